"""The incident that started this project, replayed against a live session.

Real Baileys 7.0.0-rc14 in the bridge's Node runtime, logged in by QR to the WhatsApp simulator,
supervised by the SessionManager; the monitor runs as inside `python -m bridge`. Then another
process does what the legacy monitor did (`rm -rf` of the auth folder), or truncates creds.json.
The monitor must stop the session, restore, start it, and the session must be open again with the
same identity and without a new QR, with exactly one critical alert on Telegram.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Settings
from bridge.events import EventBus
from bridge.monitor.alerts import AlertSink, LogSink, TelegramSink
from bridge.monitor.folder_check import inspect_folder
from bridge.monitor.runner import run_monitor
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import damage, digest, wait_event
from tests.monitor.telegram_receiver import TelegramReceiver
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0
_numbers = itertools.count(random.Random(os.getpid() + 9).randrange(10_000, 90_000) * 1000)


@dataclass
class Bridge:
    settings: Settings
    bus: EventBus
    manager: SessionManager
    snapshots: Snapshots


@asynccontextmanager
async def bridge_with_monitor(
    auth_root: Path, simulator: SimulatorClient, telegram: TelegramReceiver
) -> AsyncIterator[Bridge]:
    """SessionManager + run_monitor wired as bridge/app.py wires them."""
    settings = Settings(
        _env_file=None,
        auth_root=auth_root,
        wa_url=simulator.ws_url,
        wa_trust_root=simulator.root_pub,
        reconnect_initial=0.2,
        reconnect_max=2.0,
        restart_backoff_initial=0.2,
        stop_grace=15.0,
        monitor_scan_interval=2.0,
        monitor_confirm_delay=0.2,
        snapshot_min_interval=0.5,
    )
    bus = EventBus(capacity=10_000)
    snapshots = Snapshots(auth_root)
    manager = SessionManager(settings, bus, snapshots)
    sinks: list[AlertSink] = [LogSink(), TelegramSink("77:live", "1", api_base=telegram.base_url)]
    monitor = asyncio.create_task(run_monitor(settings, bus, snapshots, manager=manager, sinks=sinks))
    try:
        yield Bridge(settings, bus, manager, snapshots)
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        await manager.shutdown()


async def link_by_qr(bridge: Bridge, simulator: SimulatorClient, session_id: str) -> str:
    phone = f"1556{next(_numbers):08d}"
    await simulator.create_account(phone)
    await bridge.manager.create(session_id)
    await bridge.manager.start(session_id)
    await bridge.manager.wait_for_state(session_id, {"qr"}, TIMEOUT)
    qr = bridge.manager.current_qr(session_id)
    assert qr is not None
    await simulator.scan(qr.qr, phone=phone)
    await bridge.manager.wait_for_state(session_id, {"open"}, TIMEOUT)
    return phone


async def exchange(bridge: Bridge, simulator: SimulatorClient, sid: str, phone: str, contact: str, tag: str) -> None:
    """One message each way: proves the Signal state in the folder works."""
    mark = bridge.bus.last_seq
    await simulator.send_from_contact(contact, phone, f"to bridge {tag}")
    await wait_event(
        bridge.bus, lambda e: e.kind == "message" and e.data["text"] == f"to bridge {tag}", within=TIMEOUT, after=mark
    )
    sent = await bridge.manager.send_text(sid, contact, f"from bridge {tag}")
    await simulator.wait_inbox(contact, lambda m: m.id == sent, TIMEOUT)


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


def identity(folder: Path) -> tuple[str, str]:
    creds = json.loads((folder / "creds.json").read_text())
    return creds["me"]["id"], creds["noiseKey"]["public"]["data"]


async def replay(
    tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver, sid: str, sabotage: str
) -> tuple[dict[str, object], float, float, list[str]]:
    """Link `sid`, run `sabotage` (a shell command on {folder}) and wait until it is open again.

    Returns the incident, seconds from the damage to the folder being restored and to the session
    being open again, and the session's states after the damage.
    """
    auth_root = tmp_path / "auth"
    auth_root.mkdir()
    folder = auth_root / sid
    async with bridge_with_monitor(auth_root, simulator, telegram) as bridge:
        phone = await link_by_qr(bridge, simulator, sid)
        contact = f"1557{next(_numbers):08d}"
        await simulator.create_contact(contact)
        await exchange(bridge, simulator, sid, phone, contact, "before")
        await settled_snapshot(bridge, sid)
        before = identity(folder)
        mark = bridge.bus.last_seq
        damaged_at = time.monotonic()
        damage(sabotage.format(folder=folder))
        incident = await wait_event(bridge.bus, lambda e: e.kind == "incident", within=TIMEOUT, after=mark)
        restored_in = time.monotonic() - damaged_at
        await bridge.manager.wait_for_state(sid, {"open"}, TIMEOUT)  # a creds-only repair never leaves open
        open_in = time.monotonic() - damaged_at
        await telegram.wait_for(1)
        await asyncio.sleep(2.0)  # room for any second alert to show up
        after = bridge.bus.since(mark, sid)
        assert not [e for e in after if e.kind == "qr"], "the session asked for a new QR"
        assert bridge.manager.get(sid).state == "open"
        assert identity(folder) == before
        states = [str(e.data["state"]) for e in after if e.kind == "state"]
        await exchange(bridge, simulator, sid, phone, contact, "after")
    return incident.data, restored_in, open_in, states


async def test_rm_rf_of_a_live_sessions_folder_is_restored_and_it_reopens_without_a_qr(
    tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver
) -> None:
    incident, restored_in, open_in, states = await replay(tmp_path, simulator, telegram, "live", "rm -rf {folder}")
    print(f"\nlive rm -rf: folder restored {restored_in:.2f} s after deletion (target < 5 s; "
          f"{incident['seconds_to_restore']} s of it from detection: stop + restore), "
          f"session open again after {open_in:.2f} s; states {states}")
    assert incident["kind"] == "folder_removed"
    assert incident["restored"] is True and incident["session_restarted"] is True
    criticals = [m.text for m in telegram.messages if "CRITICAL" in m.text]
    assert len(criticals) == 1 and "folder_removed" in criticals[0], [m.text for m in telegram.messages]


async def test_truncated_creds_under_a_live_session_never_become_a_fresh_identity(
    tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver
) -> None:
    incident, restored_in, open_in, states = await replay(
        tmp_path, simulator, telegram, "trunc", ": > {folder}/creds.json"
    )
    print(f"\nlive truncate: restored after {restored_in:.2f} s, open again after {open_in:.2f} s; states {states}")
    assert incident["kind"] == "creds_truncated" and incident["restored"] is True
    assert incident["action"] == "put_back_creds" and incident["stopped"] == []  # it never stopped
    assert states == []  # and never left open
    criticals = [m.text for m in telegram.messages if "CRITICAL" in m.text]
    assert len(criticals) == 1 and "creds_truncated" in criticals[0]


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
        phone = f"1556{next(_numbers):08d}"
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
