"""SessionWatch: alerts for trouble that builds up slowly rather than happening in one event.

Sessions already alert at the moment they are logged out, banned or fail. What nobody sees from a
single event is a session that has been reconnecting for ten minutes, a QR nobody scans, a disk
filling up, or snapshots that stopped being taken. SessionWatch follows `state` events on the bus
and, every `Settings.monitor_scan_interval`, checks those standing conditions. It also backs up
the sessions' own alerts: a session that entered logged_out / banned / failed without any alert
for it within a grace period (`alert_grace`) gets one from here. It only reads and publishes alerts; the Alerter
de-duplicates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bridge.config import Settings
from bridge.events import Event, EventBus, Severity
from bridge.monitor.watcher import newest_first
from bridge.store.snapshots import Snapshots

log = logging.getLogger("bridge.monitor")

TERMINAL_ALERTS: dict[str, str] = {
    "logged_out": "WhatsApp logged this device out; files are kept. Link it again (start the session).",
    "banned": "WhatsApp refused this account (banned); files are kept. Check the number before starting it.",
    "failed": "the session failed and stopped reconnecting; see its reason and the runtime log, then start it.",
}
ALERT_GRACE = 5.0
"""Seconds a session's own alert gets, beyond the time stopping its runtime may take (the session
raises its alert after the stop), before SessionWatch raises a backup one."""
MiB = 1024 * 1024


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


class Facts(NamedTuple):
    """What a tick needs from the disk: usage (or the error reading it), newest snapshot times."""

    usage: DiskUsage | str
    newest_snapshot: dict[str, float]


@dataclass
class _Stint:
    """One session's current state and since when; flags keep one alert per stint."""

    state: str
    since: float
    entered_seq: int
    alerted: bool = False


class SessionWatch:
    """Standing-condition alerts over sessions, disk and snapshot age; see module docstring."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        snapshots: Snapshots,
        *,
        clock: Callable[[], float] = time.time,
        disk_usage: Callable[[Path], DiskUsage] | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.snapshots = snapshots
        self._clock = clock
        self._disk_usage = disk_usage or (lambda p: DiskUsage(*shutil.disk_usage(p)))
        self.alert_grace = ALERT_GRACE + settings.stop_grace + settings.term_grace
        self._stints: dict[str, _Stint] = {}
        self._alerted_seq: dict[str, int] = {}

    def observe(self, event: Event) -> None:
        """Follow one bus event (state changes and alerts)."""
        if event.session is None:
            return
        if event.kind == "alert":
            self._alerted_seq[event.session] = event.seq
        elif event.kind == "state":
            new = str(event.data.get("state", ""))
            stint = self._stints.get(event.session)
            if stint is None or stint.state != new:
                self._stints[event.session] = _Stint(new, event.ts, event.seq)

    def gather(self) -> Facts:
        """Read disk usage and snapshot ages (file I/O: call from a worker thread)."""
        root = Path(self.settings.auth_root)
        try:
            usage: DiskUsage | str = self._disk_usage(root if root.exists() else root.parent)
        except OSError as exc:
            usage = str(exc)
        newest: dict[str, float] = {}
        for sid in self.snapshots.sessions():
            latest = next(newest_first(self.snapshots, sid), None)
            if latest is not None and self.snapshots.session_folder(sid).is_dir():
                newest[sid] = latest.created_at
        return Facts(usage, newest)

    def tick(self, now: float | None = None, facts: Facts | None = None) -> list[Event]:
        """Check every standing condition once; returns the alerts published (on the loop's thread)."""
        now = self._clock() if now is None else now
        facts = self.gather() if facts is None else facts
        raised: list[Event] = []
        for sid, stint in sorted(self._stints.items()):
            if stint.alerted:
                continue
            event = self._check_stint(sid, stint, now)
            if event is not None:
                stint.alerted = True
                raised.append(event)
        raised.extend(self._check_disk(facts.usage))
        raised.extend(self._check_snapshot_age(facts.newest_snapshot, now))
        return raised

    def _check_stint(self, sid: str, stint: _Stint, now: float) -> Event | None:
        age = now - stint.since
        if stint.state == "reconnecting" and age >= self.settings.monitor_reconnecting_alert:
            return self._alert(sid, "stuck_reconnecting", "warning",
                               f"reconnecting for {age:.0f} s; WhatsApp unreachable or the network is down?")
        if stint.state in ("qr", "pairing") and age >= self.settings.monitor_qr_alert:
            return self._alert(sid, "qr_waiting", "warning",
                               f"waiting {age:.0f} s for the device to be linked ({stint.state}); nobody scanned it")
        if stint.state in TERMINAL_ALERTS and age >= self.alert_grace:
            if self._alerted_seq.get(sid, 0) > stint.entered_seq:
                stint.alerted = True  # the session said it itself
                return None
            return self._alert(sid, stint.state, "critical", TERMINAL_ALERTS[stint.state])
        return None

    def _check_disk(self, usage: DiskUsage | str) -> list[Event]:
        root = self.settings.auth_root
        if isinstance(usage, str):
            return [self._alert(None, "disk_unreadable", "warning", f"cannot read disk usage of {root}: {usage}")]
        limit = self.settings.monitor_min_free_mb * MiB
        if usage.free >= limit:
            return []
        severity: Severity = "critical" if usage.free < limit // 4 else "warning"
        return [self._alert(None, "disk_low", severity,
                            f"only {usage.free // MiB} MB free under {root} (alert below "
                            f"{self.settings.monitor_min_free_mb} MB); snapshots and creds writes will fail when full")]

    def _check_snapshot_age(self, newest: dict[str, float], now: float) -> list[Event]:
        expected = self.settings.snapshot_interval * 2 + self.settings.monitor_scan_interval
        raised: list[Event] = []
        for sid, created_at in sorted(newest.items()):
            age = now - created_at
            if age > expected:
                raised.append(self._alert(sid, "snapshot_stale", "warning",
                                          f"newest snapshot is {age / 3600:.1f} h old (expected every "
                                          f"{self.settings.snapshot_interval / 3600:.1f} h); check the monitor log"))
        return raised

    def _alert(self, session: str | None, kind: str, severity: Severity, message: str) -> Event:
        return self.bus.alert(session, kind, severity, message if session is None else f"session {session}: {message}")

    async def run(self) -> None:
        """Follow the bus and tick every scan interval until cancelled."""
        for event in self.bus.since(0):
            self.observe(event)
        follower = asyncio.create_task(self._follow(self.bus.last_seq))
        try:
            while True:
                try:
                    self.tick(facts=await asyncio.to_thread(self.gather))
                except Exception:
                    log.exception("session watch tick failed")
                await asyncio.sleep(self.settings.monitor_scan_interval)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _follow(self, after: int) -> None:
        async for event in self.bus.subscribe(after=after):
            self.observe(event)
