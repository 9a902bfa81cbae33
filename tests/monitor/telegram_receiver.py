"""A local HTTP server that speaks the part of the Telegram Bot API the alert sink uses.

Telegram itself cannot be reached from tests, so this stands in for it: `POST /bot<token>/sendMessage`
with a JSON body answers `{"ok": true, "result": {...}}` like the real API, records what it got, and
can be told to fail the next N requests (HTTP 500, or 429 with `parameters.retry_after`) or to hang,
so retries and non-blocking delivery are exercised over real HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ReceivedMessage:
    token: str
    chat_id: str
    text: str
    received_at: float


@dataclass
class TelegramReceiver:
    """Recorded messages plus knobs for failures. `base_url` goes into Settings.telegram_api."""

    base_url: str = ""
    messages: list[ReceivedMessage] = field(default_factory=list)
    requests: int = 0
    fail_next: int = 0
    fail_status: int = 500
    retry_after: int | None = None
    hang: asyncio.Event | None = None
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        token = request.match_info["token"]
        if self.hang is not None:
            await self.hang.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            body: dict[str, Any] = {"ok": False, "error_code": self.fail_status, "description": "induced failure"}
            if self.retry_after is not None:
                body["parameters"] = {"retry_after": self.retry_after}
            return web.json_response(body, status=self.fail_status)
        payload = await request.json()
        if "chat_id" not in payload or not payload.get("text"):
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}, status=400
            )
        msg = ReceivedMessage(token, str(payload["chat_id"]), str(payload["text"]), time.time())
        async with self.arrived:
            self.messages.append(msg)
            self.arrived.notify_all()
        result = {
            "message_id": next(self._ids),
            "date": int(msg.received_at),
            "chat": {"id": payload["chat_id"], "type": "private"},
            "text": msg.text,
        }
        return web.json_response({"ok": True, "result": result})

    async def wait_for(self, count: int, within: float = 60.0) -> list[ReceivedMessage]:
        """Wait until at least `count` messages arrived; return them all."""
        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)


async def start_receiver() -> tuple[TelegramReceiver, web.AppRunner]:
    """Start the receiver on a free loopback port."""
    receiver = TelegramReceiver()
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base_url = f"http://127.0.0.1:{port}"
    return receiver, runner
