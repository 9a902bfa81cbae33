"""Issue 12 item 7, a second bridge started on an auth root another bridge is running: it must
refuse to start with a clear message (no traceback), or coordinate with the first: then a session
created through it is not lost from the registry, and a damaged folder is repaired once (one
incident, one critical alert, one replaced folder across both), never by two monitors.
"""

from __future__ import annotations

import asyncio
import json
import time

from tests.faults.conftest import MakeBridge
from tests.faults.damage import CredsDamage, damage_creds
from tests.faults.service import BridgeProcess
from tests.faults.tenants import Age, Login, age, key_files, link, replaced_folders
from tests.faults.verdict import QUIET, clean_exit, criticals, incidents, reopened
from tests.simulator.client import SimulatorClient

REFUSAL_GRACE = 15.0


async def start_second(second: BridgeProcess) -> bool:
    """Start `second`; True if it runs beside the first, False if it refused (and exited)."""
    try:
        await second.start()
    except AssertionError:
        if second.running:
            raise
    try:
        code = await second.wait_exit(REFUSAL_GRACE)
    except TimeoutError:
        return True
    log = second.log()
    print(f"\nthe second bridge refused (exit {code}): {log.strip().splitlines()[-1] if log.strip() else ''}")
    assert code != 0, "a refusing bridge must not exit 0"
    assert "Traceback" not in log, log[-3000:]
    return False


async def test_a_second_bridge_on_the_same_root_never_repairs_twice_nor_loses_the_registry(
    make_bridge: MakeBridge, simulator: SimulatorClient
) -> None:
    first = await make_bridge().start()
    tenant = await link(first, simulator, "tenant", Login.QR)
    await age(first, simulator, [tenant], Age.FRESH)
    second = make_bridge(name="second")
    beside = await start_second(second)
    if beside:
        await second.api("POST", "/api/v1/sessions", {"id": "via-second", "start": False})
    intact = key_files(tenant.folder)
    replaced_before = len(replaced_folders(first.auth_root, tenant.sid))
    mark_first, mark_second = first.mark(), second.mark()
    damage_creds(tenant.folder, CredsDamage.TRUNCATED, first.auth_root.parent)
    damaged_at = time.time()
    await reopened(first, simulator, tenant, mark=mark_first, damaged_at=damaged_at, intact=intact,
                   label="creds truncated with a second bridge on the root")
    if beside:
        await asyncio.sleep(QUIET)
        assert not incidents(second, mark_second, tenant.sid), "the second bridge's monitor repaired it too"
        assert not criticals(second, mark_second, tenant.sid), [e["data"] for e in second.since(mark_second)]
    assert len(replaced_folders(first.auth_root, tenant.sid)) <= replaced_before + 1, "the folder was replaced twice"
    await clean_exit(first)
    if beside:
        await clean_exit(second)
        registry = json.loads((first.auth_root / ".bridge" / "sessions.json").read_text())
        assert {"tenant", "via-second"} <= set(registry["sessions"]), sorted(registry["sessions"])
