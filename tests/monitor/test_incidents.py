"""The incident journal only grows, survives a torn last line, and splits by month."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bridge.monitor.incidents import Incident, IncidentLog, new_incident_id


def incident(session: str, ts: float, **kw: object) -> Incident:
    return Incident(id=new_incident_id(), session=session, kind="creds_deleted", detail="x", detected_at=ts, **kw)  # type: ignore[arg-type]


def test_incidents_are_appended_never_rewritten(auth_root: Path) -> None:
    log = IncidentLog(auth_root / ".bridge")
    now = time.time()
    first = log.append(incident("a", now))
    inode = os.stat(first).st_ino
    size = first.stat().st_size
    log.append(incident("b", now, restored=True, snapshot="snap"))
    assert os.stat(first).st_ino == inode and first.stat().st_size > size  # same file, grown
    assert [(i.session, i.restored) for i in log.read_all()] == [("a", False), ("b", True)]


def test_a_torn_last_line_from_a_crash_is_skipped(auth_root: Path) -> None:
    log = IncidentLog(auth_root / ".bridge")
    path = log.append(incident("a", time.time()))
    with path.open("ab") as fh:  # what a power cut in the middle of an append leaves
        fh.write(b'{"id":"x","session":"b","ki')
    assert [i.session for i in log.read_all()] == ["a"]


def test_one_file_per_month(auth_root: Path) -> None:
    log = IncidentLog(auth_root / ".bridge")
    jan = log.append(incident("a", 1767225600.0))  # 2026-01-01
    feb = log.append(incident("b", 1769904000.0))  # 2026-02-01
    assert (jan.name, feb.name) == ("incidents-2026-01.jsonl", "incidents-2026-02.jsonl")
    assert [i.session for i in log.read_all()] == ["a", "b"]


def test_latest_gives_each_incident_once_in_its_last_recorded_state(auth_root: Path) -> None:
    log = IncidentLog(auth_root / ".bridge")
    opened = incident("a", time.time())
    log.append(opened)
    log.append(incident("b", time.time()))
    opened.resolved_at, opened.resolution = time.time(), "readable again"
    log.append(opened)
    assert len(log.read_all()) == 3
    assert [(i.session, i.resolution) for i in log.latest()] == [("a", "readable again"), ("b", "")]
