"""A bridge restart writes the session registry once per tenant, not once per state change: each
tenant passes through starting and connecting (kept in memory, written with the next write) to
open (written), and changes arriving during a write share the next one (issue 19: at 1000
tenants a restart used to rewrite and fsync the whole file ~3000 times)."""

from __future__ import annotations

import asyncio

from bridge.sessions.registry import Registry
from tests.sessions.conftest import MakeManager
from tests.sessions.helpers import TIMEOUT, link
from tests.simulator.client import SimulatorClient

TENANTS = 4


async def test_a_restart_writes_the_registry_at_most_once_per_tenant(
    make_manager: MakeManager, simulator: SimulatorClient,
) -> None:
    ids = [f"reg{i}" for i in range(TENANTS)]
    first = make_manager(sessions_per_runtime=TENANTS)
    for sid in ids:
        await link(first, simulator, sid)
    await first.shutdown()

    second = make_manager(sessions_per_runtime=TENANTS, start_concurrency=TENANTS, start_ramp=0.0)
    registry = second.registry
    changes, writes = registry.changes, registry.writes
    assert sorted(await second.start_all()) == ids
    await asyncio.gather(*(second.wait_for_state(sid, {"open"}, TIMEOUT) for sid in ids))
    changes, writes = registry.changes - changes, registry.writes - writes
    print(f"restart of {TENANTS} linked tenants: {changes} registry changes (one write each before), {writes} writes")

    assert changes >= 3 * TENANTS  # starting, connecting, open: each was a write of its own
    assert 1 <= writes <= TENANTS
    assert {r.id: r.last_state for r in Registry(registry.bridge_dir).all()} == dict.fromkeys(ids, "open")
