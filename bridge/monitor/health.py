"""SessionWatch: alerts for trouble that builds up slowly rather than happening in one event.

Sessions already alert at the moment they are logged out, banned or fail. What nobody sees from a
single event is a session that has been reconnecting for ten minutes, a QR nobody scans, a disk
filling up, or snapshots that stopped being taken. SessionWatch follows `state` events on the bus
and, every `Settings.monitor_scan_interval`, checks those standing conditions. It also backs up
the sessions' own alerts: a session that entered logged_out / banned / failed without any alert
for it within a grace period (`alert_grace`) gets one from here. It only reads and publishes alerts.

Every condition is an episode: it is published once when it begins (again only if it gets more
severe) and once, as `info`, when it ends, never on every tick. The event stream and webhooks see
the same alerts as the operator, so the Alerter's rate limit alone is not enough.
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
from bridge.errors import BridgeError
from bridge.events import Event, EventBus, EventKind, Severity, canonical_kind
from bridge.monitor.history import newest_first
from bridge.sessions.state import HALTED, SessionState
from bridge.store.snapshots import Snapshots

log = logging.getLogger("bridge.monitor")

TERMINAL_ALERTS: dict[SessionState, str] = {
    SessionState.LOGGED_OUT: "WhatsApp logged this device out; files are kept. Link it again (start the session).",
    SessionState.BANNED: "WhatsApp refused this account (banned); files are kept. Check the number before starting it.",
    SessionState.FAILED: (
        "the session failed and stopped reconnecting; see its reason and the runtime log, then start it."
    ),
}
WAITING_FOR_LINK: frozenset[SessionState] = frozenset({SessionState.QR, SessionState.PAIRING})
_SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
ALERT_GRACE = 5.0
"""Seconds a session's own alert gets, beyond the time stopping its runtime may take (the session
raises its alert after the stop), before SessionWatch raises a backup one."""
MiB = 1024 * 1024
_MTIME_SETTLED_NS = 2_000_000_000


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

    state: SessionState
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
        self._episodes: dict[tuple[str | None, str], Severity] = {}
        self._newest_cache: dict[str, tuple[int, float | None]] = {}

    def observe(self, event: Event) -> None:
        """Follow one bus event (state changes and alerts)."""
        if event.session is None:
            return
        kind = canonical_kind(event.kind)
        if kind == EventKind.ALERT:
            self._alerted_seq[event.session] = event.seq
        elif kind == EventKind.SESSION_STATE:
            try:
                new = SessionState(str(event.data.get("state", "")))
            except ValueError:
                log.warning("session %s: unknown state %r on the bus", event.session, event.data.get("state"))
                return
            stint = self._stints.get(event.session)
            if stint is None or stint.state != new:
                # A state that follows an incident (its `incident` id rides on the event) was
                # alerted once, by whoever opened the incident: no backup alert for it.
                self._stints[event.session] = _Stint(new, event.ts, event.seq, alerted=bool(event.data.get("incident")))

    def gather(self) -> Facts:
        """Read disk usage and snapshot ages (file I/O: call from a worker thread)."""
        root = Path(self.settings.auth_root)
        try:
            usage: DiskUsage | str = self._disk_usage(root if root.exists() else root.parent)
        except OSError as exc:
            usage = str(exc)
        newest: dict[str, float] = {}
        for sid in self.snapshots.sessions():
            created_at = self._newest_snapshot_time(sid)
            if created_at is not None and self.snapshots.session_folder(sid).is_dir():
                newest[sid] = created_at
        return Facts(usage, newest)

    def _newest_snapshot_time(self, sid: str) -> float | None:
        """When the session's newest snapshot was taken. A manifest is only ever added or removed
        (never rewritten), which changes its folder's mtime: the newest one is decoded again only
        then, so a tick over a thousand idle tenants costs a stat each, not a manifest read each. A
        folder changed within the last seconds is not cached: a second manifest written within the
        file system's timestamp granularity would leave the mtime as it was."""
        try:
            stamp = self.snapshots.manifests.session_dir(sid).stat().st_mtime_ns
        except (OSError, BridgeError):
            stamp = None
        cached = self._newest_cache.get(sid)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        latest = next(newest_first(self.snapshots, sid), None)
        created_at = None if latest is None else latest.created_at
        if stamp is not None and time.time_ns() - stamp > _MTIME_SETTLED_NS:
            self._newest_cache[sid] = (stamp, created_at)
        return created_at

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
        if stint.state is SessionState.RECONNECTING and age >= self.settings.monitor_reconnecting_alert:
            return self._alert(sid, "stuck_reconnecting", "warning",
                               f"reconnecting for {age:.0f} s; WhatsApp unreachable or the network is down?")
        if stint.state in WAITING_FOR_LINK and age >= self.settings.monitor_qr_alert:
            return self._alert(sid, "qr_waiting", "warning", f"waiting {age:.0f} s for the device to be linked "
                               f"({stint.state.value}); nobody scanned it")
        if stint.state in HALTED and age >= self.alert_grace:
            if self._alerted_seq.get(sid, 0) > stint.entered_seq:
                stint.alerted = True  # the session said it itself
                return None
            generic = f"the session is {stint.state.value}; see its reason, then start it."
            text = TERMINAL_ALERTS.get(stint.state, generic)
            return self._alert(sid, stint.state.value, "critical", text)
        return None

    def _check_disk(self, usage: DiskUsage | str) -> list[Event]:
        root = self.settings.auth_root
        readable_again = f"disk usage of {root} is readable again"
        if isinstance(usage, str):
            return self._episode(None, "disk_unreadable", "warning", f"cannot read disk usage of {root}: {usage}",
                                 readable_again)
        raised = self._episode(None, "disk_unreadable", None, "", readable_again)
        limit = self.settings.monitor_min_free_mb * MiB
        free_mb = usage.free // MiB
        if usage.free < limit:
            severity: Severity = "critical" if usage.free < limit // 4 else "warning"
            raised += self._episode(
                None, "disk_low", severity,
                f"only {free_mb} MB free under {root} (alert below {self.settings.monitor_min_free_mb} MB); "
                "snapshots and creds writes will fail when it is full: free space on that file system",
                "",
            )
        elif usage.free >= limit + limit // 20:
            # 5% above the line before "space is back", so a disk hovering at the line does not flap.
            raised += self._episode(None, "disk_low", None, "", f"{free_mb} MB free under {root} again")
        return raised

    def _check_snapshot_age(self, newest: dict[str, float], now: float) -> list[Event]:
        expected = self.settings.snapshot_interval * 2 + self.settings.monitor_scan_interval
        raised: list[Event] = []
        for sid, created_at in sorted(newest.items()):
            age = now - created_at
            raised += self._episode(
                sid, "snapshot_stale", "warning" if age > expected else None,
                f"newest snapshot is {age / 3600:.1f} h old (expected every "
                f"{self.settings.snapshot_interval / 3600:.1f} h); check the monitor log",
                "a fresh snapshot was taken",
            )
        return raised

    def _episode(
        self, session: str | None, kind: str, severity: Severity | None, message: str, recovered: str
    ) -> list[Event]:
        """One alert when condition `kind` begins or gets worse, one `info` when it ends.

        `severity` None means the condition does not hold (now).
        """
        key = (session, kind)
        current = self._episodes.get(key)
        if severity is None:
            if current is None:
                return []
            del self._episodes[key]
            return [self._alert(session, kind, "info", recovered, resolved=True)]
        self._episodes[key] = severity if current is None else max(current, severity, key=_SEVERITY_RANK.__getitem__)
        if current is not None and _SEVERITY_RANK[severity] <= _SEVERITY_RANK[current]:
            return []
        return [self._alert(session, kind, severity, message)]

    def _alert(self, session: str | None, kind: str, severity: Severity, message: str, **extra: object) -> Event:
        text = message if session is None else f"session {session}: {message}"
        return self.bus.alert(session, kind, severity, text, **extra)

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
