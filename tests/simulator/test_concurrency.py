"""Many tenants pair at once: ten real Baileys clients, ten phone accounts, one simulator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from tests.simulator.client import SimulatorClient, start_simulator
from tests.simulator.driver import baileys, pair_by_qr

TENANTS = 10


async def test_ten_accounts_pair_concurrently(tmp_path: Path) -> None:
    async with start_simulator() as sim, contextlib.AsyncExitStack() as stack:
        drivers = [await stack.enter_async_context(baileys(sim, tmp_path / f"t{i}")) for i in range(TENANTS)]
        phones = [f"1555060{i:04d}" for i in range(TENANTS)]
        started = time.monotonic()
        opened = await asyncio.gather(*(pair_by_qr(sim, d, p) for d, p in zip(drivers, phones, strict=True)))
        # informational only (never asserted): reported by the simulator README / lead
        print(f"\n{TENANTS} concurrent pairings reached open in {time.monotonic() - started:.1f}s")
        assert sorted(o["me"]["id"].split(":")[0] for o in opened) == phones
        await assert_each_device_registered(sim, phones)


async def assert_each_device_registered(sim: SimulatorClient, phones: list[str]) -> None:
    devices = {d.phone: d for d in await sim.devices()}
    for phone in phones:
        assert devices[phone].connected
        assert devices[phone].pre_keys > 0
    assert {a.phone for a in await sim.accounts()} >= set(phones)
