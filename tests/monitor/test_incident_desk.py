"""One cause, one incident: the sessions and the monitor share the `IncidentDesk`, whoever sees
the cause first, and the incident ends (one `info` notice) only when its last holder lets go."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.events import Event, EventBus
from bridge.monitor.incidents import IncidentLog
from bridge.sessions.incident_desk import IncidentDesk, identity_key, monitor_holder, storage_key


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
