"""Webhooks: configured per session over the API, signed with HMAC-SHA256, retried with backoff
when the receiver fails, never blocking the bus (publishing returns at once even when the receiver
hangs), and the secret is never echoed back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridge.api.webhooks import SIGNATURE_HEADER, sign
from tests.api.conftest import AUTH, Bridge
from tests.api.sse import collect_until

SECRET = "webhook-secret-0123456789"


class Receiver:
    """A local HTTP endpoint that checks signatures and fails the first `fail_first` attempts."""

    def __init__(self, fail_first: int = 0, hang: bool = False) -> None:
        self.fail_first = fail_first
        self.hang = hang
        self.attempts: list[dict[str, Any]] = []
        self.delivered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.release = asyncio.Event()
        self.first_attempt = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed_ok = hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected)
        attempt = {"body": json.loads(body), "signed_ok": signed_ok, "headers": dict(request.headers)}
        self.attempts.append(attempt)
        self.first_attempt.set()
        if self.hang:
            await asyncio.wait_for(self.release.wait(), 120)
        if len(self.attempts) <= self.fail_first:
            return web.Response(status=500, text="try again")
        await self.delivered.put(attempt)
        return web.Response(status=200)


async def _setup(bridge: Bridge, aiohttp_server: Callable[..., Any], receiver: Receiver, sid: str) -> None:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    response = await bridge.client.post("/api/v1/sessions", json={"id": sid, "start": False}, headers=AUTH)
    assert response.status == 201
    url = str(server.make_url("/hook"))
    response = await bridge.client.put(
        f"/api/v1/sessions/{sid}/webhook", json={"url": url, "secret": SECRET, "events": ["test"]}, headers=AUTH
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {"url": url, "events": ["test"]}


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"a":1}'
    assert sign("k" * 16, body) == "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()


async def test_delivery_is_signed_and_retried_after_a_500(bridge: Bridge, aiohttp_server: Callable[..., Any]) -> None:
    receiver = Receiver(fail_first=1)
    await _setup(bridge, aiohttp_server, receiver, "hooked")
    bridge.bus.publish("hooked", "ignored-kind", {"n": 0})
    event = bridge.bus.publish("hooked", "test", {"n": 1})
    delivered = await asyncio.wait_for(receiver.delivered.get(), 60)
    assert len(receiver.attempts) == 2, "one failed attempt (500), then the retry succeeded"
    assert all(a["signed_ok"] for a in receiver.attempts)
    assert delivered["body"] == {
        "seq": event.seq, "ts": event.ts, "session": "hooked", "kind": "test", "data": {"n": 1},
    }
    assert delivered["headers"]["X-Bridge-Event"] == "test"
    assert receiver.attempts[0]["headers"]["X-Bridge-Delivery"] == delivered["headers"]["X-Bridge-Delivery"]
    metrics = await (await bridge.client.get("/metrics", headers=AUTH)).text()
    assert 'bridge_webhook_deliveries_total{outcome="failed"}' in metrics


async def test_a_hanging_receiver_never_blocks_the_session(bridge: Bridge, aiohttp_server: Callable[..., Any]) -> None:
    receiver = Receiver(hang=True)
    await _setup(bridge, aiohttp_server, receiver, "slow")
    bridge.bus.publish("slow", "test", {"n": -1})
    await asyncio.wait_for(receiver.first_attempt.wait(), 60)
    stream = await bridge.client.get(f"/api/v1/sessions/slow/events?after={bridge.bus.last_seq}", headers=AUTH)
    for i in range(1500):
        bridge.bus.publish("slow", "test", {"n": i})
        if i % 500 == 499:
            await asyncio.sleep(0.2)  # bursts within the bus's per-subscriber buffer
    got = await collect_until(stream, lambda m: m.event == "test" and m.data["data"]["n"] == 1499)
    assert len([m for m in got if m.event == "test"]) == 1500, "live consumers got every event"
    assert len(receiver.attempts) == 1, "the stuck delivery holds only its own session's webhook queue"
    metrics = await (await bridge.client.get("/metrics", headers=AUTH)).text()
    prefix = 'bridge_webhook_deliveries_total{outcome="dropped"}'
    dropped = [line for line in metrics.splitlines() if line.startswith(prefix)]
    assert dropped and float(dropped[0].split()[-1]) >= 500, "the bounded webhook queue dropped the oldest"
    stream.close()
    receiver.release.set()


async def test_webhook_config_is_read_back_without_secret_and_removable(
    bridge: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    await _setup(bridge, aiohttp_server, Receiver(), "cfg")
    response = await bridge.client.get("/api/v1/sessions/cfg/webhook", headers=AUTH)
    assert response.status == 200 and "secret" not in await response.json()
    stored = (bridge.settings.bridge_dir / "webhooks.json")
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (await bridge.client.delete("/api/v1/sessions/cfg/webhook", headers=AUTH)).status == 204
    assert (await bridge.client.get("/api/v1/sessions/cfg/webhook", headers=AUTH)).status == 404


async def test_webhook_url_and_secret_are_validated(bridge: Bridge) -> None:
    await bridge.client.post("/api/v1/sessions", json={"id": "v", "start": False}, headers=AUTH)
    for body in ({"url": "ftp://x", "secret": SECRET}, {"url": "http://x", "secret": "short"}):
        response = await bridge.client.put("/api/v1/sessions/v/webhook", json=body, headers=AUTH)
        assert response.status == 422
