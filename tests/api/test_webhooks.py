"""Webhooks: configured over the API (global or per session, filtered by kind and session), signed
per Standard Webhooks (verified here with the `standardwebhooks` package), retried with backoff
and Retry-After when the receiver fails, delivered in order per session, dead-lettered after the
retry horizon and redeliverable; a hanging receiver never blocks a session or other receivers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from bridge.events import event_json
from tests.api.conftest import AUTH, Bridge, make_settings
from tests.api.sse import collect_until

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class Receiver:
    """A local HTTP endpoint that verifies signatures and answers what the test says."""

    def __init__(self, secret: str = SECRET, answers: list[web.Response] | None = None, hang: bool = False) -> None:
        self.verifier = Verifier(secret)
        self.answers = answers or []
        self.hang = hang
        self.attempts: list[dict[str, Any]] = []
        self.delivered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.release = asyncio.Event()
        self.first_attempt = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.verifier.verify(body, dict(request.headers))  # raises on a bad signature: the test sees a 500
        attempt = {"body": json.loads(body), "raw": body, "headers": dict(request.headers), "at": time.monotonic()}
        self.attempts.append(attempt)
        self.first_attempt.set()
        if self.hang:
            await asyncio.wait_for(self.release.wait(), 120)
        if self.answers:
            return self.answers.pop(0)
        await self.delivered.put(attempt)
        return web.Response(status=204)

    async def url(self, aiohttp_server: Callable[..., Any]) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        server = await aiohttp_server(app)
        return str(server.make_url("/hook"))


async def _session(bridge: Bridge, sid: str) -> None:
    response = await bridge.client.post("/api/v1/sessions", json={"id": sid, "start": False}, headers=AUTH)
    assert response.status == 201, await response.text()


async def _hook(bridge: Bridge, body: dict[str, Any]) -> dict[str, Any]:
    response = await bridge.client.post("/api/v1/webhooks", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_delivery_is_signed_per_standard_webhooks_and_retried_with_the_same_id(
    bridge: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = Receiver(answers=[web.Response(status=500)])
    await _session(bridge, "hooked")
    url = await receiver.url(aiohttp_server)
    response = await bridge.client.put("/api/v1/sessions/hooked/webhook", headers=AUTH,
                                       json={"url": url, "secret": SECRET, "events": ["message"]})
    assert response.status == 200, await response.text()
    bridge.bus.publish("hooked", "snapshot", {"n": 0})  # not wanted by the filter
    event = bridge.bus.publish("hooked", "message", {"n": 1})
    delivered = await asyncio.wait_for(receiver.delivered.get(), 60)
    assert len(receiver.attempts) == 2, "one failed attempt (500), then the retry succeeded"
    assert delivered["raw"] == event_json(event)
    assert delivered["body"]["kind"] == "message" and delivered["body"]["data"] == {"n": 1}
    first, second = receiver.attempts
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"], "receivers deduplicate on it"
    assert second["headers"]["X-Bridge-Event"] == "message"
    assert second["headers"]["X-Bridge-Delivery"] == str(event.seq)
    legacy = "sha256=" + hmac.new(base64.b64decode(SECRET[6:]), delivered["raw"], hashlib.sha256).hexdigest()
    assert second["headers"]["X-Bridge-Signature"] == legacy
    metrics = await (await bridge.client.get("/metrics", headers=AUTH)).text()
    assert 'bridge_webhook_deliveries_total{outcome="retry"}' in metrics


async def test_unknown_event_kinds_are_refused_and_first_names_are_accepted(bridge: Bridge) -> None:
    await _session(bridge, "v")
    for kinds, bad in ((["../x"], "../x"), (["message", "nope"], "nope")):
        response = await bridge.client.post("/api/v1/webhooks", headers=AUTH,
                                            json={"url": "http://127.0.0.1:9/h", "events": kinds})
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "unknown_event_kind" and repr(bad) in error["message"]
    created = await _hook(bridge, {"url": "http://127.0.0.1:9/h", "events": ["state", "qr", "message"]})
    assert created["events"] == ["message", "session.qr", "session.state"]


async def test_config_is_private_and_a_made_secret_is_shown_once(bridge: Bridge) -> None:
    await _session(bridge, "cfg")
    created = await _hook(bridge, {"url": "https://example.invalid/h", "sessions": ["cfg"]})
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32
    shown = await (await bridge.client.get(f"/api/v1/webhooks/{created['id']}", headers=AUTH)).json()
    assert shown["secret"] is None and shown["sessions"] == ["cfg"]
    stored = bridge.settings.auth_root.parent / "state" / "webhooks.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (await bridge.client.delete(f"/api/v1/webhooks/{created['id']}", headers=AUTH)).status == 204
    missing = await bridge.client.get(f"/api/v1/webhooks/{created['id']}", headers=AUTH)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "webhook_not_found"
    unknown_session = await bridge.client.post("/api/v1/webhooks", headers=AUTH,
                                               json={"url": "https://x.invalid/h", "sessions": ["ghost"]})
    assert unknown_session.status == 404


async def test_webhook_url_and_secret_are_validated(bridge: Bridge) -> None:
    await _session(bridge, "v")
    for body in ({"url": "ftp://x", "secret": "s" * 20}, {"url": "http://x", "secret": "short"},
                 {"url": "file:///etc/passwd"}):
        response = await bridge.client.post("/api/v1/webhooks", json=body, headers=AUTH)
        assert response.status == 422, body


async def test_a_hanging_receiver_never_blocks_a_session_or_other_receivers(
    bridge: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    stuck, healthy = Receiver(hang=True), Receiver()
    await _session(bridge, "slow")
    await _hook(bridge, {"url": await stuck.url(aiohttp_server), "secret": SECRET})
    await _hook(bridge, {"url": await healthy.url(aiohttp_server), "secret": SECRET})
    bridge.bus.publish("slow", "message", {"n": -1})
    await asyncio.wait_for(stuck.first_attempt.wait(), 60)
    stream = await bridge.client.get(f"/api/v1/sessions/slow/events?after={bridge.bus.last_seq}", headers=AUTH)
    for i in range(300):
        bridge.bus.publish("slow", "message", {"n": i})
    got = await collect_until(stream, lambda m: m.event == "message" and m.data["data"]["n"] == 299)
    assert len([m for m in got if m.event == "message"]) == 300, "live consumers got every event"
    for _ in range(301):
        await asyncio.wait_for(healthy.delivered.get(), 60)
    assert len(stuck.attempts) == 1, "the stuck head holds only its own session's lane of its own webhook"
    stream.close()
    stuck.release.set()


async def test_retry_after_is_honoured(bridge: Bridge, aiohttp_server: Callable[..., Any]) -> None:
    receiver = Receiver(answers=[web.Response(status=429, headers={"Retry-After": "1"})])
    await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    bridge.bus.publish(None, "alert", {"n": 1})
    await asyncio.wait_for(receiver.delivered.get(), 60)
    first, second = receiver.attempts
    assert second["at"] - first["at"] >= 1.0


async def test_a_redirect_is_a_failure_not_followed(bridge: Bridge, aiohttp_server: Callable[..., Any]) -> None:
    receiver = Receiver(answers=[web.Response(status=307, headers={"Location": "http://127.0.0.1:9/elsewhere"})])
    await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    bridge.bus.publish(None, "alert", {"n": 1})
    await asyncio.wait_for(receiver.delivered.get(), 60)
    assert len(receiver.attempts) == 2


@pytest.fixture
async def impatient(tmp_path: Any, aiohttp_client: Callable[..., Any]) -> Any:
    from tests.api.conftest import _bridge

    settings = make_settings(tmp_path, webhook_max_attempts=2, webhook_backoff_initial=0.05)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def test_after_the_horizon_deliveries_are_dead_letters_and_can_be_redelivered(
    impatient: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    bridge = impatient
    receiver = Receiver(answers=[web.Response(status=503) for _ in range(2 * 3)])
    await _session(bridge, "d")
    hook = await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    events = [bridge.bus.publish("d", "message", {"n": i}) for i in range(3)]
    base = f"/api/v1/webhooks/{hook['id']}"
    deadline = time.monotonic() + 60
    while True:
        failed = (await (await bridge.client.get(f"{base}/deliveries?state=failed", headers=AUTH)).json())
        if len(failed["deliveries"]) == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [d["seq"] for d in failed["deliveries"]] == [e.seq for e in events]
    assert all(d["attempts"] == 2 and "503" in d["last_error"] for d in failed["deliveries"])
    metrics = await (await bridge.client.get("/metrics", headers=AUTH)).text()
    assert f'bridge_webhook_dead_letters{{webhook="{hook["id"]}"}} 3.0' in metrics
    again = await bridge.client.post(f"{base}/redeliver", json={}, headers=AUTH)
    assert (await again.json()) == {"requeued": 3}
    got = [await asyncio.wait_for(receiver.delivered.get(), 60) for _ in range(3)]
    assert [g["body"]["data"]["n"] for g in got] == [0, 1, 2], "in order, per session"
    assert {g["headers"]["webhook-id"] for g in got} == {d["webhook_id"] for d in failed["deliveries"]}


async def test_a_receiver_down_for_a_while_gets_everything_in_order_per_session(
    bridge: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    receiver = Receiver(answers=[web.Response(status=502) for _ in range(6)])
    await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    sent = [bridge.bus.publish(sid, "message", {"sid": sid, "n": n}) for n in range(20) for sid in ("a", "b", "c")]
    got = [await asyncio.wait_for(receiver.delivered.get(), 60) for _ in sent]
    for sid in ("a", "b", "c"):
        assert [g["body"]["data"]["n"] for g in got if g["body"]["session"] == sid] == list(range(20))


async def test_a_backlog_longer_than_the_memory_window_is_read_back_in_order(
    bridge: Bridge, aiohttp_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.eventlog.outbox import OutboxBacklog

    monkeypatch.setattr(OutboxBacklog, "WINDOW", 5)
    receiver = Receiver(answers=[web.Response(status=503) for _ in range(3)])
    sent = [bridge.bus.publish("long", "message", {"n": n}) for n in range(23)]
    await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    sent += [bridge.bus.publish("long", "message", {"n": n}) for n in range(23, 40)]
    got = [await asyncio.wait_for(receiver.delivered.get(), 60) for _ in range(17)]
    assert [g["body"]["data"]["n"] for g in got] == list(range(23, 40)), "a webhook gets events from its creation on"
    extra = [bridge.bus.publish("long", "message", {"n": n}) for n in range(40, 60)]
    got = [await asyncio.wait_for(receiver.delivered.get(), 60) for _ in extra]
    assert [g["body"]["data"]["n"] for g in got] == list(range(40, 60))


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from email.utils import formatdate

    from bridge.webhooks.dispatcher import retry_after_seconds

    assert retry_after_seconds("7", 0.0) == 7.0
    assert retry_after_seconds(formatdate(1_000_030, usegmt=True), 1_000_000.0) == pytest.approx(30.0)
    assert retry_after_seconds(formatdate(999_000, usegmt=True), 1_000_000.0) == 0.0
    assert retry_after_seconds("soon", 0.0) is None and retry_after_seconds(None, 0.0) is None


@pytest.fixture
async def short_timeout(tmp_path: Any, aiohttp_client: Callable[..., Any]) -> Any:
    from tests.api.conftest import _bridge

    settings = make_settings(tmp_path, webhook_timeout=0.5, webhook_backoff_initial=0.05)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def test_a_receiver_that_never_answers_times_out_and_is_retried(
    short_timeout: Bridge, aiohttp_server: Callable[..., Any]
) -> None:
    bridge = short_timeout
    receiver = Receiver(hang=True)
    await _hook(bridge, {"url": await receiver.url(aiohttp_server), "secret": SECRET})
    bridge.bus.publish(None, "alert", {"n": 1})
    await asyncio.wait_for(receiver.first_attempt.wait(), 60)
    receiver.hang = False
    delivered = await asyncio.wait_for(receiver.delivered.get(), 60)
    assert delivered["body"]["data"] == {"n": 1}
    assert len(receiver.attempts) >= 2, "the hanging attempt was abandoned after BRIDGE_WEBHOOK_TIMEOUT"
    receiver.release.set()
