"""The shared event log between real bridge nodes: a tenant run by node A, its events streamed by
node B (SSE from the shared log, with the shared numbering, resumable on B), and each webhook
delivery made once, by one node, with a webhook registered through the other node; a delivery
whose node died mid-request is made by another node once the dead node's claim expired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api.conftest import AUTH
from tests.api.sse import SseMessage, collect_until
from tests.cluster.cluster_nodes import ClusterNode, link, owners
from tests.cluster.webhook_receiver import SECRET, Receiver
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

TTL = 4.0


@pytest.fixture
async def pair(tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str) -> AsyncIterator[list[ClusterNode]]:
    nodes = [ClusterNode(f"e{i}", tmp_path, simulator, fresh_dsn, TTL) for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


def _is_message(ids: set[str]) -> object:
    seen: set[str] = set()

    def check(message: SseMessage) -> bool:
        if message.event == "message" and message.data["data"]["id"] in ids:
            seen.add(message.data["data"]["id"])
        return seen == ids

    return check


async def test_a_tenants_events_stream_on_another_node_and_each_webhook_is_delivered_once(
    pair: list[ClusterNode], simulator: SimulatorClient, fresh_dsn: str, receiver: Receiver
) -> None:
    a, b = pair
    await b.api("POST", "/api/v1/webhooks", receiver.spec())
    info = await link(a, simulator, "shared-a")
    assert owners(fresh_dsn)["shared-a"] == "e0", "the tenant runs on node A"
    phone = info["me"].split("@")[0].split(":")[0]
    contact = fresh_phone()
    await simulator.create_contact(contact)

    async with aiohttp.ClientSession(b.base, headers=AUTH) as http, http.get("/api/v1/events") as stream:
        assert stream.status == 200
        sent = {(await simulator.send_from_contact(contact, phone, f"to node A, seen on B {i}")).id for i in range(3)}
        live = await collect_until(stream, _is_message(sent), 60)
    messages = [m for m in live if m.event == "message" and m.data["data"]["id"] in sent]
    assert {m.data["session"] for m in messages} == {"shared-a"}
    seqs = [int(m.id or 0) for m in live]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "shared numbering, in order, once"

    resume_from = int(messages[0].id or 0) - 1
    async with aiohttp.ClientSession(b.base, headers=AUTH) as http, \
            http.get("/api/v1/events", headers={"Last-Event-ID": str(resume_from)}) as stream:
        replayed = await collect_until(stream, _is_message(sent), 30)
    assert int(replayed[0].id or 0) == resume_from + 1, "resumed on B from the shared log"

    assert await receiver.wait_messages(sent, 60), receiver.message_ids()
    counts = receiver.message_ids()
    assert {mid: counts[mid] for mid in sent} == dict.fromkeys(sent, 1), "each delivered once, by one node"
    hook_id = (await a.api("GET", "/api/v1/webhooks"))["webhooks"][0]["id"]
    wanted = {int(m.id or 0) for m in messages}
    for _ in range(100):  # the 2xx is recorded right after the receiver answered
        rows = (await a.api("GET", f"/api/v1/webhooks/{hook_id}/deliveries?state=delivered"))["deliveries"]
        if wanted <= {r["seq"] for r in rows}:
            break
        await asyncio.sleep(0.1)
    assert wanted <= {r["seq"] for r in rows}, "node A lists B's webhook's deliveries"


@pytest.mark.slow
async def test_a_delivery_whose_node_died_mid_request_is_made_by_another_node(
    tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str
) -> None:
    receiver = await Receiver(hang_first=True).start()
    a = ClusterNode("k0", tmp_path, simulator, fresh_dsn, TTL, BRIDGE_WEBHOOK_TIMEOUT="2")
    b = ClusterNode("k1", tmp_path, simulator, fresh_dsn, TTL, BRIDGE_WEBHOOK_TIMEOUT="2")
    try:
        await a.start()
        await a.api("POST", "/api/v1/webhooks", {"url": receiver.url, "secret": SECRET})
        await a.api("POST", "/api/v1/sessions", {"id": "k"})  # its state events go to the receiver
        await asyncio.wait_for(receiver.hanging.wait(), 60)
        first = receiver.attempted[0]
        await a.kill()  # mid-request, its claim held
        killed = time.monotonic()
        await b.start()
        for _ in range(600):
            if first in receiver.ids:
                break
            await asyncio.sleep(0.1)
        print(f"\nthe dead node's delivery made by the other node {time.monotonic() - killed:.1f} s after the kill "
              "(claim: webhook timeout 2 s + 30 s)")
        assert receiver.ids[first] == 1, "delivered by the other node, with the same webhook-id"
    finally:
        await asyncio.gather(a.kill(), b.kill(), return_exceptions=True)
        await receiver.close()
