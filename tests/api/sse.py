"""A small Server-Sent Events reader for tests (what a browser's EventSource does, minus retries)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse


@dataclass
class SseMessage:
    id: str | None
    event: str
    data: dict[str, Any]


async def next_message(response: ClientResponse, timeout: float = 60.0) -> SseMessage:  # noqa: ASYNC109
    """Read lines until one complete message with data; comments and `retry:` lines are skipped."""

    async def read() -> SseMessage:
        fields: dict[str, str] = {}
        while True:
            raw = await response.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    return SseMessage(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
                fields.clear()
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    return await asyncio.wait_for(read(), timeout)


async def collect_until(
    response: ClientResponse, predicate: Any, timeout: float = 120.0  # noqa: ASYNC109
) -> list[SseMessage]:
    """Every message up to and including the first one for which `predicate(message)` is true."""
    seen: list[SseMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await next_message(response, max(0.1, deadline - loop.time()))
        seen.append(message)
        if predicate(message):
            return seen
