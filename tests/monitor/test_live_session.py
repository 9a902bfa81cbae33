"""The monitor beside a live session's own lifecycle: what the session does itself is not damage.

Real Baileys 7.0.0-rc14 in the bridge's Node runtime, logged in by QR to the WhatsApp simulator,
supervised by the SessionManager; the monitor runs as inside `python -m bridge`. Damage by kind and
session age is test_live_damage.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.monitor.folder_check import inspect_folder
from tests.monitor.helpers import damage, digest, wait_event
from tests.monitor.live import TIMEOUT, Bridge, bridge_with_monitor, fresh_number, identity, link_by_qr
from tests.monitor.telegram_receiver import TelegramReceiver
from tests.simulator.client import SimulatorClient


async def settled_snapshot(bridge: Bridge, session_id: str, within: float = TIMEOUT) -> dict[str, str]:
    """Wait until the folder is registered and has stopped changing (login traffic is over), and
    return its digest once a snapshot holds exactly that state.

    The monitor snapshots on creds changes only; key files that change afterwards (a pre-key the
    phone's history sync consumed) wait for the schedule. So once the folder has been still for a
    second and no snapshot matches it, the test takes the snapshot an operator's schedule would.
    """
    folder = bridge.settings.auth_root / session_id
    deadline = time.monotonic() + within
    previous: dict[str, str] | None = None
    still_since = time.monotonic()
    while True:
        current = digest(folder)
        latest = bridge.snapshots.latest(session_id)
        if latest is not None and latest.registered and {f.name: f.sha256 for f in latest.files} == current:
            return current
        if current != previous:
            previous, still_since = current, time.monotonic()
        elif time.monotonic() - still_since > 1.0 and inspect_folder(folder).registered:
            await asyncio.to_thread(bridge.snapshots.create, session_id, "scheduled")
        assert time.monotonic() < deadline, "no snapshot of the settled, registered folder"
        await asyncio.sleep(0.25)


async def test_a_deliberate_relink_after_logout_is_not_undone(
    tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver
) -> None:
    """Fresh creds over registered ones are damage, except when the bridge itself links a new
    device after a logout (the store snapshotted the old creds first)."""
    auth_root = tmp_path / "auth"
    auth_root.mkdir()
    folder = auth_root / "relink"
    async with bridge_with_monitor(auth_root, simulator, telegram) as bridge:
        await link_by_qr(bridge, simulator, "relink")
        await settled_snapshot(bridge, "relink")
        old = identity(folder)
        await bridge.manager.logout("relink")
        await bridge.manager.wait_for_state("relink", {"logged_out"}, TIMEOUT)
        await bridge.manager.start("relink")
        await bridge.manager.wait_for_state("relink", {"qr"}, TIMEOUT)
        qr = bridge.manager.current_qr("relink")
        assert qr is not None
        phone = fresh_number()
        await simulator.create_account(phone)
        await simulator.scan(qr.qr, phone=phone)
        await bridge.manager.wait_for_state("relink", {"open"}, TIMEOUT)
        await settled_snapshot(bridge, "relink")
        await asyncio.sleep(2.5)  # one more full scan
        assert identity(folder)[0].startswith(phone) and identity(folder) != old
        assert [e for e in bridge.bus.since(0) if e.kind == "incident"] == []
        assert any(m.registered and m.reason != "pre-restore" for m in bridge.snapshots.list("relink")[1:])


async def test_creds_truncated_while_the_session_is_stopped_are_restored_before_it_starts(
    tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver
) -> None:
    auth_root = tmp_path / "auth"
    auth_root.mkdir()
    folder = auth_root / "parked"
    async with bridge_with_monitor(auth_root, simulator, telegram) as bridge:
        await link_by_qr(bridge, simulator, "parked")
        await settled_snapshot(bridge, "parked")
        before = identity(folder)
        await bridge.manager.stop("parked")
        await bridge.manager.wait_for_state("parked", {"stopped"}, TIMEOUT)
        mark = bridge.bus.last_seq
        damage(f": > {folder}/creds.json")
        incident = await wait_event(bridge.bus, lambda e: e.kind == "incident", within=TIMEOUT, after=mark)
        assert incident.data["restored"] is True and incident.data["session_restarted"] is False
        assert bridge.manager.get("parked").state == "stopped"  # it was stopped; it stays stopped
        await bridge.manager.start("parked")
        await bridge.manager.wait_for_state("parked", {"open"}, TIMEOUT)
        assert not [e for e in bridge.bus.since(mark, "parked") if e.kind == "qr"]
        assert identity(folder) == before
        await telegram.wait_for(1)
    assert "creds_truncated" in telegram.messages[0].text
