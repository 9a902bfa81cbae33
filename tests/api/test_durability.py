"""Events and webhooks survive a crash: the bridge is SIGKILLed (once; six times in a row in the
slow variant) while its webhook receiver is down, restarted, and the receiver comes back.

Specifications (a real `python -m bridge`, real Node runtimes whose sessions keep reconnecting to
a WhatsApp address nobody listens on, so they publish state events all along; a real HTTP
receiver verifying Standard Webhooks signatures):
- every event the first process showed on SSE reaches the receiver at least once, after the
  restart, and the first arrivals of each session's events are in sequence order;
- an SSE client resuming with the last id it saw before a kill gets the following events from
  the next process with no gap (consecutive ids: the log is the source);
- the last process shuts down cleanly (exit 0); a duplicate delivery carries the same webhook-id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from tests.api.conftest import API_KEY, AUTH
from tests.api.service_helpers import bridge_process, free_port, wait_http
from tests.api.sse import SseMessage, collect_until

SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()
TIMEOUT = 120.0


def bridge_env(root: Path, port: int) -> dict[str, str]:
    return {
        "BRIDGE_AUTH_ROOT": str(root / "auth"),
        "BRIDGE_PORT": str(port),
        "BRIDGE_API_KEYS": API_KEY,
        "BRIDGE_MONITOR_ENABLED": "false",
        "BRIDGE_WA_URL": f"ws://127.0.0.1:{free_port()}/ws/chat",  # nobody listens: sessions keep reconnecting
        "BRIDGE_RECONNECT_INITIAL": "0.2",
        "BRIDGE_RECONNECT_MAX": "0.5",
        "BRIDGE_SESSIONS_PER_RUNTIME": "3",
        "BRIDGE_WEBHOOK_BACKOFF_INITIAL": "0.1",
        "BRIDGE_WEBHOOK_BACKOFF_MAX": "0.5",
        "BRIDGE_LOG_LEVEL": "WARNING",
    }


class Receiver:
    def __init__(self) -> None:
        self.verifier = Verifier(SECRET)
        self.arrivals: list[dict[str, Any]] = []
        self.seen: set[int] = set()
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.verifier.verify(body, dict(request.headers))
        event = json.loads(body)
        self.arrivals.append({"event": event, "id": request.headers["webhook-id"]})
        self.seen.add(event["seq"])
        self.changed.set()
        return web.Response(status=200)


async def kill_hard(pid: int) -> None:
    """SIGKILL the bridge; its Node runtimes notice the parent is gone and exit by themselves."""
    children = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    _, alive = await asyncio.to_thread(psutil.wait_procs, children, 30)
    for child in alive:
        child.kill()


@pytest.mark.parametrize("kills", [1, pytest.param(6, marks=pytest.mark.slow)])
async def test_sigkill_with_a_dead_receiver_loses_no_event_and_sse_resumes_without_gap(
    tmp_path: Path, aiohttp_server: Callable[..., Any], kills: int
) -> None:
    port, hook_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = bridge_env(tmp_path, port)
    shown: list[SseMessage] = []
    for round_ in range(kills):
        async with bridge_process(tmp_path, env, "run") as proc, aiohttp.ClientSession(headers=AUTH) as http:
            await wait_http(f"{base}/readyz", AUTH)
            last_seen = int(shown[-1].id or 0) if shown else 0
            stream = await http.get(f"{base}/api/v1/events", headers={"Last-Event-ID": str(last_seen)})
            if round_ == 0:
                made = await http.post(f"{base}/api/v1/webhooks",
                                       json={"url": f"http://127.0.0.1:{hook_port}/hook", "secret": SECRET})
                assert made.status == 201, await made.text()
                for sid in ("k1", "k2", "k3"):
                    created = await http.post(f"{base}/api/v1/sessions", json={"id": sid})
                    assert created.status == 201, await created.text()
            got = await collect_until(stream, lambda m, start=last_seen: int(m.id or 0) >= start + 40, TIMEOUT)
            ids = [int(m.id or 0) for m in got if m.id is not None]
            assert ids == list(range(last_seen + 1, last_seen + 1 + len(ids))), "resumed from the log, no gap"
            shown += [m for m in got if m.id is not None]
            stream.close()
            await kill_hard(proc.pid)
            await proc.wait()

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    await aiohttp_server(app, port=hook_port)
    async with bridge_process(tmp_path, env, "run") as last, aiohttp.ClientSession(headers=AUTH) as http:
        await wait_http(f"{base}/readyz", AUTH)
        wanted = {int(m.id or 0) for m in shown}
        async with asyncio.timeout(TIMEOUT):
            while not wanted <= receiver.seen:
                receiver.changed.clear()
                await receiver.changed.wait()
        last.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(last.wait(), 60) == 0

    for sid in ("k1", "k2", "k3"):
        first_arrivals: list[int] = []
        for arrival in receiver.arrivals:
            event = arrival["event"]
            if event["session"] == sid and event["seq"] not in first_arrivals:
                first_arrivals.append(event["seq"])
        assert first_arrivals, f"session {sid} published events"
        assert first_arrivals == sorted(first_arrivals), f"session {sid} delivered in order"
    ids_by_seq: dict[int, set[str]] = {}
    for arrival in receiver.arrivals:
        ids_by_seq.setdefault(arrival["event"]["seq"], set()).add(arrival["id"])
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), "a duplicate carries the same webhook-id"
