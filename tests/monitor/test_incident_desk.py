"""One cause, one incident: the sessions and the monitor share the `IncidentDesk`, whoever sees
the cause first, and the incident ends (one `info` notice) only when its last holder lets go."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.events import Event, EventBus
from bridge.monitor.incidents import IncidentLog
from bridge.monitor.watcher import AuthWatcher
from bridge.sessions.incident_desk import IncidentDesk, identity_key, monitor_holder, storage_key
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import damage, make_legacy_folder, monitor_settings, wait_event


def alerts(bus: EventBus) -> list[Event]:
    return [e for e in bus.since(0) if e.kind == "alert"]


async def test_a_storage_fault_seen_by_a_session_and_the_monitor_is_one_incident_with_one_alert(
    auth_root: Path,
) -> None:
    bus = EventBus()
    journal = IncidentLog(auth_root / ".bridge")
    desk = IncidentDesk(bus, journal)
    first = desk.join(storage_key(), "t1", "storage_fault", "no space left", code="storage_full")
    again = desk.join(storage_key(), "t1", "storage_fault", "the probe failed too", code="storage_full")
    seen = desk.join(storage_key(), "t1", "folder_unreadable", "cannot read t1", holder=monitor_holder("t1"))
    other = desk.join(storage_key(), "t2", "storage_fault", "no space left", code="storage_full")
    assert first == again == seen == other
    desk.leave(storage_key(), monitor_holder("t1"), "the folder is readable")  # t1 and t2 still suspended
    desk.leave(storage_key(), "t1")
    assert desk.get(storage_key()) is not None and not [a for a in alerts(bus) if a.data["severity"] == "info"]
    desk.leave(storage_key(), "t2", "every session is open again")
    assert desk.get(storage_key()) is None
    said = [(a.data["severity"], a.data["incident"]) for a in alerts(bus)]
    assert said == [("critical", first), ("info", first)]
    assert "every session is open again" in alerts(bus)[-1].data["message"] and alerts(bus)[-1].data["resolved"]
    assert [e.data["id"] for e in bus.since(0) if e.kind == "incident"] == [first]
    await asyncio.to_thread(desk.flush)
    [record] = journal.latest()
    assert record.id == first and record.sessions == ["t1", "t2"] and record.resolved_at is not None
    assert len(journal.read_all()) == 2  # opened, ended


async def test_after_an_incident_ends_the_same_cause_is_a_new_incident() -> None:
    bus = EventBus()
    desk = IncidentDesk(bus)
    first = desk.join(storage_key(), "t1", "storage_fault", "read-only")
    desk.leave(storage_key(), "t1")
    second = desk.join(storage_key(), "t1", "storage_fault", "read-only again")
    assert first != second
    assert [a.data["severity"] for a in alerts(bus)] == ["critical", "info", "critical"]


def test_both_halves_of_a_swap_have_one_key() -> None:
    assert identity_key(["b", "a"]) == identity_key(("a", "b")) != identity_key(("a", "c"))


async def test_a_swap_a_session_saw_first_is_its_incident_and_ends_only_when_the_session_lets_go(
    auth_root: Path,
) -> None:
    make_legacy_folder(auth_root / "a", 5)
    make_legacy_folder(auth_root / "b", 5)
    bus = EventBus()
    desk = IncidentDesk(bus)
    watcher = AuthWatcher(monitor_settings(auth_root, monitor_scan_interval=0.3), bus, Snapshots(auth_root), desk=desk)
    task = asyncio.create_task(watcher.run())
    try:
        for sid in ("a", "b"):
            await wait_event(bus, lambda e, s=sid: e.kind == "snapshot" and e.session == s and e.data["registered"])
        key = identity_key(("a", "b"))
        first = desk.join(key, "a", "identity_mismatch", "a's folder holds b's account")  # a refused start, first
        damage(f"cd {auth_root} && mv a x && mv b a && mv x b")
        seen = await wait_event(bus, lambda e: e.kind == "incident" and e.data.get("joined"))
        assert seen.data["id"] == first and sorted(seen.data["sessions"]) == ["a", "b"]
        damage(f"cd {auth_root} && mv a x && mv b a && mv x b")  # put back
        deadline = asyncio.get_running_loop().time() + 30
        while desk.holders(key) != {"a"}:  # the monitor let go; the session still holds it
            assert asyncio.get_running_loop().time() < deadline, desk.holders(key)
            await asyncio.sleep(0.1)
        assert not [a for a in alerts(bus) if a.data["severity"] == "info"]
        desk.leave(key, "a", "a is open again")
    finally:
        watcher.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [(a.data["severity"], a.data["incident"]) for a in alerts(bus)] == [("critical", first), ("info", first)]
