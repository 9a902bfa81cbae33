"""The database restarts under load: the nodes keep their tenants' open sockets (no new login at
the simulator), auth writes wait and resume, no lease moves, and every message contacts sent
meanwhile reaches its tenant (the receiving node's event stream shows it).

The restart (pg_ctl stop -m fast, start) is shorter than the lease TTL here; leases count from the
database's restart, so holders get one TTL to renew before anyone may claim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api.conftest import AUTH
from tests.cluster.cluster_nodes import ClusterNode, link, owners
from tests.cluster.pg import PgServer
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

TTL = 8.0
TENANTS = 4
READ_FOR = 5.0


@pytest.fixture
async def cluster(tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str) -> AsyncIterator[list[ClusterNode]]:
    nodes = [ClusterNode(f"d{i}", tmp_path, simulator, fresh_dsn, TTL) for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def texts_seen(node: ClusterNode) -> set[str]:
    """Every message text in the node's event log, as its stream replays it within READ_FOR seconds."""
    seen: set[str] = set()
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(
        f"{node.base}/api/v1/events", params={"after": "0"}, timeout=aiohttp.ClientTimeout(total=READ_FOR)
    ) as stream:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    text = (event.get("data") or {}).get("text")
                    if isinstance(text, str):
                        seen.add(text)
    return seen


async def test_a_database_restart_keeps_every_socket_open_and_loses_no_message(
    cluster: list[ClusterNode], simulator: SimulatorClient, fresh_dsn: str, pg_server: PgServer
) -> None:
    ids = [f"dbr-{i}" for i in range(TENANTS)]
    infos = {sid: await link(cluster[i % 2], simulator, sid) for i, sid in enumerate(ids)}
    phones = {sid: info["me"].split("@")[0].split(":")[0] for sid, info in infos.items()}
    contacts = {sid: fresh_phone() for sid in ids}
    for contact in contacts.values():
        await simulator.create_contact(contact)
    held = owners(fresh_dsn)
    before = {row["jid"]: row for row in await simulator._call("GET", "/connections")}
    sent: list[str] = []

    async def chatter() -> None:
        n = 0
        while True:
            for sid in ids:
                text = f"while the database restarts {sid} {n}"
                await simulator.send_from_contact(contacts[sid], phones[sid], text)
                sent.append(text)
            n += 1
            await asyncio.sleep(0.3)

    talking = asyncio.create_task(chatter())
    try:
        await asyncio.sleep(1.0)
        restarted = time.monotonic()
        await asyncio.to_thread(pg_server.restart)
        down_s = time.monotonic() - restarted
        await asyncio.sleep(TTL)  # several rounds after the restart
    finally:
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking
    print(f"\ndatabase restart ({down_s:.1f} s) under {len(sent)} contact messages with {TENANTS} tenants on 2 nodes")

    assert owners(fresh_dsn) == held, "a lease moved because of the restart"
    after = {row["jid"]: row for row in await simulator._call("GET", "/connections")}
    for sid, info in infos.items():
        assert after[info["me"]]["logins"] == before[info["me"]]["logins"], (sid, after[info["me"]])
        assert (await cluster[0].wait_open(sid))["me"] == info["me"]
    by_name = {node.name: node for node in cluster}
    deadline = time.monotonic() + 60
    missing = set(sent)
    while missing and time.monotonic() < deadline:
        seen: set[str] = set()
        for name in set(held.values()):
            seen |= await texts_seen(by_name[str(name)])
        missing = set(sent) - seen
    assert not missing, f"{len(missing)} of {len(sent)} messages never reached a tenant: {sorted(missing)[:5]}"
