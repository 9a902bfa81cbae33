"""A node paused past its lease (SIGSTOP of the bridge and its Node runtimes) loses its tenants to
another node; when it resumes (SIGCONT) its writes are refused, it stops those tenants at once and
never reconnects them: no "conflict: replaced" loop, the new owner stays open.

What the simulator counts per device (GET /connections): logins, logins that replaced a socket
still open (the takeover of the frozen node's socket is the one expected), and logged-in sockets
open at the same moment. The frozen node's socket stays open at TCP level while it is stopped (a
real server would time it out), so the takeover replaces it once (the one moment two sockets of a
device are open: until the server closes the replaced one). After the resume there must be no
further replacement: the fair share may hand a tenant back to the resumed node, but a hand-over
stops the socket before the other node logs in, so it never replaces one."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster.cluster_nodes import ClusterNode, link, owners
from tests.simulator.client import SimulatorClient

TTL = 4.0
TENANTS = 4


@pytest.fixture
async def cluster(tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str) -> AsyncIterator[list[ClusterNode]]:
    nodes = [ClusterNode(f"p{i}", tmp_path, simulator, fresh_dsn, TTL) for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def connections(simulator: SimulatorClient) -> dict[str, dict[str, Any]]:
    rows = await simulator._call("GET", "/connections")
    return {row["jid"]: row for row in rows}


def record(dsn: str, sid: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT record FROM cluster_sessions WHERE session_id = %s", (sid,)).fetchone()
    assert row is not None
    return dict(row[0])


async def test_a_node_paused_past_its_lease_is_fenced_off_and_never_fights_the_new_owner(
    cluster: list[ClusterNode], simulator: SimulatorClient, fresh_dsn: str
) -> None:
    first, second = cluster
    ids = [f"pause-{i}" for i in range(TENANTS)]
    infos = {sid: await link(first if i % 2 == 0 else second, simulator, sid) for i, sid in enumerate(ids)}
    held = owners(fresh_dsn)
    moved = [sid for sid in ids if held[sid] == first.name]
    assert moved, held
    jids = {sid: infos[sid]["me"] for sid in moved}
    counts_before = await connections(simulator)

    paused_at = time.monotonic()
    first.signal_tree(signal.SIGSTOP)
    try:
        after = await asyncio.gather(*(second.wait_open(sid) for sid in moved))
        took_over = time.monotonic() - paused_at
        assert all(owners(fresh_dsn)[sid] == second.name for sid in moved)
    finally:
        first.signal_tree(signal.SIGCONT)
    resumed_at = time.monotonic()
    counts_resumed = await connections(simulator)
    print(f"\nSIGSTOP of {first.name} holding {len(moved)} tenants: open on {second.name} after {took_over:.1f} s "
          f"(lease TTL {TTL:.0f} s)")
    assert [info["me"] for info in after] == [jids[sid] for sid in moved]

    # The resumed node must notice within a couple of its rounds; give it several.
    deadline = resumed_at + 4 * TTL
    while "lost its lease" not in first.log():
        assert time.monotonic() < deadline, first.log()[-3000:]
        await asyncio.sleep(0.2)
    await asyncio.sleep(2 * TTL)

    for sid in moved:
        assert (await second.wait_open(sid))["me"] == jids[sid]  # open wherever it runs now, same identity
        assert record(fresh_dsn, sid)["desired_running"] is True  # the stale node's "failed" was not recorded
    counts = await connections(simulator)
    for sid in moved:
        now, before, resumed = counts[jids[sid]], counts_before[jids[sid]], counts_resumed[jids[sid]]
        assert before["max_live"] == 1 and before["replaced"] == 0, before
        assert resumed["replaced"] - before["replaced"] <= 1, (sid, before, resumed)  # takeover of the frozen socket
        assert now["replaced"] == resumed["replaced"], (sid, resumed, now)  # no fight after the resume
        assert now["live"] == 1, (sid, now)
    print(f"after SIGCONT: {first.name} stopped its {len(moved)} stale tenant(s); replacements per device after "
          f"the resume: {[counts[jids[s]]['replaced'] - counts_resumed[jids[s]]['replaced'] for s in moved]}, "
          f"logins since the pause: {[counts[jids[s]]['logins'] - counts_before[jids[s]]['logins'] for s in moved]}")
