"""SessionWatch raises alerts for conditions that build up: stuck states, disk, snapshot age.

State changes are fed through a real EventBus exactly as sessions publish them; time is passed to
`tick(now=...)` so thresholds are checked without waiting for them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.events import Event, EventBus
from bridge.monitor.health import DiskUsage, Facts, SessionWatch
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import copy_folder, make_legacy_folder, monitor_settings, wait_event

ROOMY = DiskUsage(total=10**12, used=0, free=10**12)


def watch(auth_root: Path, **settings: float) -> tuple[SessionWatch, EventBus]:
    bus = EventBus()
    sw = SessionWatch(monitor_settings(auth_root, **settings), bus, Snapshots(auth_root), disk_usage=lambda p: ROOMY)
    return sw, bus


def state(bus: EventBus, sw: SessionWatch, session: str, new: str) -> float:
    event = bus.publish(session, "state", {"state": new, "previous": "", "reason": "test"})
    sw.observe(event)
    return event.ts


def kinds(events: list[Event]) -> list[tuple[str | None, str]]:
    return [(e.session, e.data["alert"]) for e in events]


def test_stuck_reconnecting_is_alerted_once_per_stint(auth_root: Path) -> None:
    sw, bus = watch(auth_root, monitor_reconnecting_alert=300)
    t = state(bus, sw, "s1", "reconnecting")
    assert sw.tick(now=t + 299) == []
    assert kinds(sw.tick(now=t + 301)) == [("s1", "stuck_reconnecting")]
    assert sw.tick(now=t + 900) == []  # still the same stint
    state(bus, sw, "s1", "open")
    t2 = state(bus, sw, "s1", "reconnecting")
    assert kinds(sw.tick(now=t2 + 301)) == [("s1", "stuck_reconnecting")]


def test_an_unscanned_qr_is_alerted(auth_root: Path) -> None:
    sw, bus = watch(auth_root, monitor_qr_alert=600)
    t = state(bus, sw, "s2", "qr")
    assert sw.tick(now=t + 10) == []
    [alert] = sw.tick(now=t + 601)
    assert alert.data["alert"] == "qr_waiting" and alert.data["severity"] == "warning"


@pytest.mark.parametrize("terminal", ["logged_out", "banned", "failed"])
def test_terminal_states_get_a_backup_alert_only_when_the_session_raised_none(auth_root: Path, terminal: str) -> None:
    sw, bus = watch(auth_root)
    t = state(bus, sw, "quiet", terminal)
    assert sw.tick(now=t + sw.alert_grace / 2) == []
    [alert] = sw.tick(now=t + sw.alert_grace + 1)
    assert alert.data["alert"] == terminal and alert.data["severity"] == "critical"

    t = state(bus, sw, "talkative", terminal)
    sw.observe(bus.alert("talkative", terminal, "critical", "the session's own alert"))
    assert sw.tick(now=t + sw.alert_grace + 1) == []


def test_low_disk_is_one_alert_per_episode_more_only_when_it_gets_worse_and_one_when_space_is_back(
    auth_root: Path,
) -> None:
    sw, _ = watch(auth_root, monitor_min_free_mb=512)
    mib = 1024 * 1024

    def tick(free_mb: int) -> list[tuple[str, str]]:
        raised = sw.tick(facts=Facts(DiskUsage(10**12, 0, free_mb * mib), {}))
        return [(e.data["alert"], e.data["severity"]) for e in raised]

    assert tick(600) == []
    assert tick(400) == [("disk_low", "warning")]
    assert tick(390) == [] and tick(400) == []  # the same episode: not on every scan
    assert tick(100) == [("disk_low", "critical")]  # worse: said once more
    assert tick(90) == [] and tick(300) == []
    assert tick(520) == []  # just above the line: not "back" yet (no flapping at the threshold)
    assert tick(600) == [("disk_low", "info")]  # space is back, said once
    assert tick(600) == []
    assert tick(10) == [("disk_low", "critical")]  # a new episode


def test_an_unreadable_disk_usage_is_said_once_and_once_more_when_readable(auth_root: Path) -> None:
    sw, _ = watch(auth_root)
    broken = Facts("Input/output error", {})
    assert kinds(sw.tick(facts=broken)) == [(None, "disk_unreadable")]
    assert sw.tick(facts=broken) == []
    [back] = sw.tick(facts=Facts(ROOMY, {}))
    assert back.data["alert"] == "disk_unreadable" and back.data["severity"] == "info"


def test_real_disk_usage_is_read_from_the_auth_root(auth_root: Path) -> None:
    bus = EventBus()
    sw = SessionWatch(monitor_settings(auth_root, monitor_min_free_mb=2**40), bus, Snapshots(auth_root))
    facts = sw.gather()
    assert isinstance(facts.usage, DiskUsage) and facts.usage.total > 0
    assert kinds(sw.tick(facts=facts)) == [(None, "disk_low")]


def test_a_stale_snapshot_is_alerted(auth_root: Path, tmp_path: Path) -> None:
    make_legacy_folder(tmp_path / "tpl", 3)
    copy_folder(tmp_path / "tpl", auth_root / "s3")
    manifest = Snapshots(auth_root).create("s3", "manual")
    sw, _ = watch(auth_root, snapshot_interval=3600, monitor_scan_interval=10)
    assert sw.tick(now=manifest.created_at + 3600) == []
    [alert] = sw.tick(now=manifest.created_at + 2 * 3600 + 11)
    assert (alert.session, alert.data["alert"]) == ("s3", "snapshot_stale")
    assert sw.tick(now=manifest.created_at + 3 * 3600) == []  # one alert per stale episode


async def test_run_follows_the_bus_and_ticks(auth_root: Path) -> None:
    sw, bus = watch(auth_root, monitor_scan_interval=0.2, stop_grace=0.5, term_grace=0.5)
    task = asyncio.create_task(sw.run())
    try:
        await asyncio.sleep(0.1)
        bus.publish("s4", "state", {"state": "banned", "previous": "open", "reason": "forbidden"})
        alert = await wait_event(bus, lambda e: e.kind == "alert" and e.session == "s4", within=sw.alert_grace + 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert alert.data["alert"] == "banned"


def test_a_halted_state_that_follows_an_incident_gets_no_backup_alert(auth_root: Path) -> None:
    """The incident's one alert was raised by whoever opened it; its follow-on states carry its id."""
    sw, bus = watch(auth_root)
    event = bus.publish("s5", "state", {"state": "failed", "previous": "open", "reason": "x", "incident": "i-1"})
    sw.observe(event)
    assert sw.tick(now=event.ts + sw.alert_grace + 1) == []
