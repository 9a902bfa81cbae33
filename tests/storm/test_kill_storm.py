"""Kill storm: contacts keep writing to three linked tenants while the bridge is SIGKILLed again and
again (its Node runtime notices and exits by itself) and restarted.

Specification (a real `python -m bridge`, real Baileys, the simulator keeping every message until
the device acknowledges it, a real HTTP receiver verifying Standard Webhooks signatures):
- every message a contact sent reaches the webhook receiver at least once, and every copy of one
  message carries the same `webhook-id` (one `message` event per message, retried deliveries only);
- the message store holds each message exactly once;
- no tenant ever shows a QR again, and no Node log line says "Bad MAC" or "failed to decrypt".
The default suite runs 100 messages and 5 kills; the slow one 500 messages and 20 kills. The
figures (messages, kills, duplicate deliveries, time) are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from tests.api.service_helpers import free_port
from tests.faults.conftest import MakeBridge
from tests.faults.service import BridgeProcess, is_kind
from tests.faults.tenants import Login, Tenant, link
from tests.simulator.client import SimulatorClient

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
TENANTS = 3
DELIVERY_TIMEOUT = 300.0
NODE_FAILURES = ("Bad MAC", "failed to decrypt")


@dataclass
class Receiver:
    """A webhook receiver: verifies each delivery, remembers (webhook-id, event) per message id."""

    verifier: Verifier = field(default_factory=lambda: Verifier(SECRET))
    deliveries: dict[str, list[str]] = field(default_factory=dict)  # message id -> webhook-ids, in order
    texts: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.verifier.verify(body, dict(request.headers))
        event = json.loads(body)
        if event.get("kind") == "message":
            data = event["data"]
            self.deliveries.setdefault(str(data["id"]), []).append(request.headers["webhook-id"])
            self.texts[str(data["id"])] = str(data.get("text"))
            self.changed.set()
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield hook, port
    finally:
        await runner.cleanup()


async def crash(bridge: BridgeProcess) -> None:
    """SIGKILL the bridge alone; its Node runtime sees its parent gone and exits by itself."""
    assert bridge.proc is not None
    children = psutil.Process(bridge.proc.pid).children(recursive=True)
    os.kill(bridge.proc.pid, signal.SIGKILL)
    await bridge.kill()  # already dead: waits for it and closes the event reader
    _, alive = await asyncio.to_thread(psutil.wait_procs, children, 30)
    for child in alive:
        child.kill()
    assert not alive, f"{len(alive)} Node runtimes outlived the killed bridge"


async def stored_ids(bridge: BridgeProcess, sid: str) -> list[str]:
    """Every message id in the tenant's message store (paged, newest first)."""
    ids: list[str] = []
    query = "limit=200"
    while True:
        page = await bridge.api("GET", f"/api/v1/sessions/{sid}/messages?{query}")
        ids += [str(m["id"]) for m in page["messages"]]
        if not page["next_before"]:
            return ids
        query = f"limit=200&before={page['next_before']}"


async def send_batch(simulator: SimulatorClient, tenants: list[Tenant], texts: list[str],
                     sent: dict[str, str], rng: random.Random) -> None:
    for text in texts:
        tenant = rng.choice(tenants)
        answer = await simulator.send_from_contact(tenant.contact, tenant.phone, text)
        sent[answer.id] = text
        await asyncio.sleep(rng.uniform(0.0, 0.05))


@pytest.mark.parametrize(("messages", "kills"), [(100, 5), pytest.param(500, 20, marks=pytest.mark.slow)])
async def test_a_kill_storm_loses_no_message_and_stores_each_once(
    make_bridge: MakeBridge, simulator: SimulatorClient, receiver: tuple[Receiver, int], tmp_path: Path,
    messages: int, kills: int,
) -> None:
    hook, hook_port = receiver
    rng = random.Random(20261202)
    bridge = await make_bridge(BRIDGE_LOG_LEVEL="INFO", BRIDGE_WEBHOOK_BACKOFF_INITIAL="0.1",
                               BRIDGE_WEBHOOK_BACKOFF_MAX="1").start()
    await bridge.api("POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{hook_port}/hook", "secret": SECRET,
                                                  "events": ["message"]})
    tenants = [await link(bridge, simulator, f"storm{n}", Login.QR) for n in range(TENANTS)]
    linked = bridge.mark()
    started = time.monotonic()
    sent: dict[str, str] = {}
    texts = [f"storm message {n} {time.monotonic_ns()}" for n in range(messages)]
    batches = [texts[i::kills + 1] for i in range(kills + 1)]
    for round_, batch in enumerate(batches):
        sending = asyncio.create_task(send_batch(simulator, tenants, batch, sent, rng))
        if round_ < kills:
            await asyncio.sleep(rng.uniform(0.2, 1.5))  # the kill lands while messages arrive
            await crash(bridge)
            await sending
            mark = bridge.mark()
            await bridge.start()
            for tenant in tenants:
                await bridge.wait_state(tenant.sid, {"open"}, after=mark)
        else:
            await sending

    async with asyncio.timeout(DELIVERY_TIMEOUT):
        while not set(sent) <= set(hook.deliveries):
            hook.changed.clear()
            await hook.changed.wait()
    elapsed = time.monotonic() - started
    duplicates = sum(len(ids) - 1 for ids in hook.deliveries.values())
    print(f"\nkill storm: {len(sent)} messages to {TENANTS} tenants, {kills} SIGKILLs, all at the receiver in "
          f"{elapsed:.1f} s; {duplicates} duplicate deliveries (same webhook-id)")

    assert {mid: hook.texts[mid] for mid in sent} == sent
    assert all(len(set(ids)) == 1 for ids in hook.deliveries.values()), (
        "a message was published twice: " + str({m: i for m, i in hook.deliveries.items() if len(set(i)) > 1}))
    for tenant in tenants:
        ids = await stored_ids(bridge, tenant.sid)
        assert len(ids) == len(set(ids)), f"{tenant.sid}: a message stored twice"
    stored = {mid for tenant in tenants for mid in await stored_ids(bridge, tenant.sid)}
    assert set(sent) <= stored, f"{len(set(sent) - stored)} messages missing from the message store"
    assert not [e for e in bridge.since(linked) if is_kind(e, "qr")], "a tenant showed a QR again"
    failures = [line for line in bridge.log().splitlines() if any(f in line for f in NODE_FAILURES)]
    assert not failures, "\n".join(failures[:5])
    assert await bridge.stop() == 0
