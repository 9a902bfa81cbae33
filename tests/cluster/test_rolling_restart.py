"""A rolling restart of all three nodes (SIGTERM, start again, next) while contacts keep writing:
every tenant stays linked with the same identity, no new device is linked (no QR, no code), the
hand-overs are clean (the simulator never sees a login replace a device's open socket, because a
node stops a tenant's socket before it releases the lease), and no event is lost: every event any
node logged is in the shared log (docs/cluster.md "Events, SSE and webhooks") and every message
event reached the webhook receiver at least once; in the shared numbering a tenant's events of one
owner all come before those of the next (the old owner's `stopped` first).

Every message a contact sent arrives too, including one the runtime forwards while its node is
evicting the tenant: the evicting session is still known to the message desk until its runtime
closed, so that message is stored (and acknowledged) there, or left with WhatsApp for the next
owner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster.cluster_nodes import ClusterNode, link, owners
from tests.cluster.webhook_receiver import Receiver
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

TTL = 4.0
TENANTS = 6


@pytest.fixture
async def cluster(tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str) -> AsyncIterator[list[ClusterNode]]:
    nodes = [ClusterNode(f"r{i}", tmp_path, simulator, fresh_dsn, TTL) for i in range(3)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def test_a_rolling_restart_of_every_node_keeps_every_tenant_linked_without_a_qr_or_a_fight(
    cluster: list[ClusterNode], simulator: SimulatorClient, fresh_dsn: str, receiver: Receiver
) -> None:
    await cluster[2].api("POST", "/api/v1/webhooks", receiver.spec())
    ids = [f"roll-{i}" for i in range(TENANTS)]
    infos = {sid: await link(cluster[i % 3], simulator, sid) for i, sid in enumerate(ids)}
    phones = {sid: info["me"].split("@")[0].split(":")[0] for sid, info in infos.items()}
    contacts = {sid: fresh_phone() for sid in ids}
    for contact in contacts.values():
        await simulator.create_contact(contact)
    devices_before = len(await simulator.devices())
    before = {row["jid"]: row for row in await simulator._call("GET", "/connections")}
    sent: set[str] = set()

    async def chatter() -> None:
        while True:
            for sid in ids:
                with contextlib.suppress(Exception):
                    message = await simulator.send_from_contact(contacts[sid], phones[sid], f"during the restart {sid}")
                    sent.add(message.id)
            await asyncio.sleep(0.5)

    talking = asyncio.create_task(chatter())
    started = time.monotonic()
    try:
        for node in cluster:
            assert await node.stop() == 0, node.log()[-3000:]
            other = next(n for n in cluster if n is not node)
            await asyncio.gather(*(other.wait_open(sid) for sid in ids))
            await node.start()
    finally:
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking
    after = {sid: await cluster[0].wait_open(sid) for sid in ids}
    await receiver.wait_messages(sent, 30)
    counts = receiver.message_ids()
    print(f"\nrolling restart of 3 nodes with {TENANTS} tenants: {time.monotonic() - started:.1f} s, {len(sent)} "
          f"messages sent by contacts meanwhile, {len(sent & set(counts))} at the webhook receiver "
          f"({sum(counts[m] for m in sent)} deliveries), owners now {sorted(owners(fresh_dsn).values(), key=str)}")

    assert {sid: info["me"] for sid, info in after.items()} == {sid: info["me"] for sid, info in infos.items()}
    assert len(await simulator.devices()) == devices_before, "a tenant linked a new device (a QR or a code)"
    # the last node back takes its fair share from the others: a tenant handed over right now is
    # briefly connected nowhere, so wait (bounded) until every tenant is connected again
    async def connections() -> dict[str, Any]:
        return {row["jid"]: row for row in await simulator._call("GET", "/connections")}

    now = await connections()
    settle_by = time.monotonic() + 30
    while any(now[info["me"]]["live"] != 1 for info in infos.values()) and time.monotonic() < settle_by:
        await asyncio.sleep(0.5)
        now = await connections()
    for sid, info in infos.items():
        assert now[info["me"]]["replaced"] == before[info["me"]]["replaced"], (sid, now[info["me"]])
        assert now[info["me"]]["live"] == 1, (sid, now[info["me"]])
    assert sent
    logged = {node.name: _logged_messages(node) for node in cluster}
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        shared = {(str(n), int(s)): json.loads(d)["id"] for n, s, d in conn.execute(
            "SELECT node_id, local_seq, data FROM cluster_events WHERE kind = 'message'").fetchall()}
    for name, events in logged.items():
        assert set(events) <= {seq for node, seq in shared if node == name}, f"{name}'s events not all shared"
    assert await receiver.wait_messages(set(shared.values()), 60), "a message event of the shared log never arrived"
    for sid in ids:
        owners_in_order = _runs(fresh_dsn, sid)
        assert all(last == "stopped" for _, last in owners_in_order[:-1]), (sid, owners_in_order)
    missing = sent - set(receiver.message_ids())
    assert not missing, f"messages sent by contacts but never at the webhook receiver: {sorted(missing)}"


def _logged_messages(node: ClusterNode) -> dict[int, str]:
    """The `message` events in `node`'s own event log: local seq -> message id."""
    with contextlib.closing(sqlite3.connect(f"file:{node.workdir / 'state' / 'events.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT seq, data FROM events WHERE kind = 'message'").fetchall()
    return {int(seq): json.loads(data)["id"] for seq, data in rows}


def _runs(dsn: str, sid: str) -> list[tuple[str, str | None]]:
    """`sid`'s state events in shared order, grouped by the node that published them: (node, last state)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT node_id, data FROM cluster_events WHERE session = %s AND kind = 'session.state' "
                            "ORDER BY seq", (sid,)).fetchall()
    runs: list[tuple[str, str | None]] = []
    for node, data in rows:
        state = json.loads(data).get("state")
        if runs and runs[-1][0] == node:
            runs[-1] = (node, state)
        else:
            runs.append((str(node), state))
    return runs
