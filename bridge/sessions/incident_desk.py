"""`IncidentDesk`: the bridge's open incidents, one record and one critical alert each, whoever
sees the cause first.

A storage fault is seen by the sessions (a write refused: `storage_fault`) and by the monitor (a
folder it cannot read, a snapshot the root refuses); two swapped folders are seen by both
sessions' next start and by the monitor's scan. Each of those is one thing that went wrong, so
the operator gets one incident for it: one `Incident` record (bridge/monitor/incidents.py),
journalled through the store's one writer, one `incident` event, one critical alert, and one
`info` notice (`resolved: true`) when it is over.

Whoever sees a cause asks the desk for the incident of its key (`storage_key`, `identity_key`,
`damage_key`: the keys are made here and nowhere else). The first asker opens it; later askers
join it silently and get the same record. Every party that holds an incident is a *holder*: a
session holds it by its id until it is well again, the monitor by `monitor_holder(session)` until
the folder is repaired or readable, the service by `None` while its root refuses writes. The
incident ends when its last holder lets go (`leave`), so the monitor seeing a folder readable
again does not end an incident a suspended session is still in (and that session's next failed
probe cannot open a second one). The incident id travels with every follow-on state change of the
sessions involved (`state` events carry it as `incident`), so nothing downstream alerts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import BridgeError
from bridge.events import EventBus, EventKind, Severity
from bridge.monitor.incidents import Incident, IncidentLog, new_incident_id

log = logging.getLogger(__name__)

STORAGE = "storage"
"""Key of the bridge's storage incident: one for every session and look a storage fault touches."""


def storage_key() -> str:
    """The key of the storage incident (full, read-only, permission denied, I/O error)."""
    return STORAGE


def identity_key(sessions: Iterable[str]) -> str:
    """The key of a mix-up of these sessions' accounts (both halves of a swap give the same key)."""
    return "identity:" + "+".join(sorted(sessions))


def damage_key(session: str, kind: str) -> str:
    """The key of damage of one kind to one session's folder."""
    return f"damage:{kind}:{session}"


def monitor_holder(session: str) -> str:
    """How the monitor holds an incident about `session` (apart from the session's own hold)."""
    return f"monitor:{session}"


@dataclass
class _Open:
    incident: Incident
    holders: set[Hashable] = field(default_factory=set)


class IncidentDesk:
    """See the module docstring. Lives on the event loop (no locking); journal writes run on one
    worker thread of their own, in order."""

    def __init__(self, bus: EventBus, journal: IncidentLog | None = None) -> None:
        self.bus = bus
        self.journal = journal
        self._open: dict[Hashable, _Open] = {}
        self._writer: ThreadPoolExecutor | None = None

    # ----- opening ------------------------------------------------------------------------
    def open(
        self,
        key: Hashable,
        incident: Incident,
        holders: Iterable[Hashable],
        *,
        alert: str | None,
        severity: Severity = "critical",
        publish: bool = True,
        **extra: Any,
    ) -> tuple[Incident, bool]:
        """The incident of `key` held (also) by `holders`: the open one, or `incident` opened now
        (journalled, published as an `incident` event unless `publish` is False, and alerted with
        `alert` as its message unless that is None). Returns the record and whether it was open
        already (then nothing was raised)."""
        entry = self._open.get(key)
        if entry is not None:
            new = set(holders) - entry.holders
            if new:
                log.warning("%s join incident %s (%s): %s", sorted(map(str, new)), entry.incident.id,
                            entry.incident.kind, incident.detail)
            entry.holders.update(new)
            for sid in incident.sessions:
                if sid not in entry.incident.sessions:
                    entry.incident.sessions.append(sid)
            return entry.incident, True
        self._open[key] = _Open(incident, set(holders))
        self.record(incident, publish=publish)
        if alert is not None:
            self.bus.alert(incident.session or None, incident.kind, severity, alert, incident=incident.id, **extra)
        return incident, False

    def join(
        self, key: Hashable, session: str | None, kind: str, message: str, *, holder: Hashable = ..., **extra: Any
    ) -> str:
        """The id of the incident of `key`, held by `holder` (default: `session`), opening it with one
        critical alert saying `message` if it is not open."""
        incident = Incident(id=new_incident_id(), session=session or "", kind=kind, detail=message,
                            detected_at=time.time(), sessions=[session] if session else [])
        found, _ = self.open(key, incident, [session if holder is ... else holder], alert=message, **extra)
        return found.id

    # ----- ending -------------------------------------------------------------------------
    def leave(self, key: Hashable, holder: Hashable, how: str = "") -> None:
        """`holder` is well again; the incident ends when nobody holds it any more."""
        entry = self._open.get(key)
        if entry is None:
            return
        entry.holders.discard(holder)
        if not entry.holders:
            self.end(key, how or "everything it touched works again")

    def end(self, key: Hashable, how: str, *, notify: bool = True) -> None:
        """The incident of `key` is over, whoever still holds it: journalled, and said once as
        `info` (unless `notify` is False: its alert already said it was repaired)."""
        entry = self._open.pop(key, None)
        if entry is None:
            return
        incident = entry.incident
        incident.resolved_at = time.time()
        incident.resolution = how
        self.record(incident, publish=False)
        log.info("incident %s (%s) is over: %s", incident.id, incident.kind, how)
        if notify:
            self.bus.alert(incident.session or None, incident.kind, "info", f"incident {incident.id} is over: {how}",
                           incident=incident.id, resolved=True)

    # ----- asking -------------------------------------------------------------------------
    def get(self, key: Hashable) -> Incident | None:
        """The open incident of `key`, if any."""
        entry = self._open.get(key)
        return entry.incident if entry is not None else None

    def holders(self, key: Hashable) -> frozenset[Hashable]:
        entry = self._open.get(key)
        return frozenset(entry.holders) if entry is not None else frozenset()

    # ----- the record ---------------------------------------------------------------------
    def record(self, incident: Incident, *, publish: bool = True) -> None:
        """Journal the incident as it is now (a copy, off the event loop, in order) and, with
        `publish`, publish it as an `incident` event."""
        if publish:
            self.bus.publish(incident.session or None, EventKind.INCIDENT, incident.as_dict())
        if self.journal is None:
            return
        snapshot = Incident(**incident.as_dict())
        self._write(lambda: self._append(snapshot))

    def _append(self, incident: Incident) -> None:
        assert self.journal is not None
        try:
            self.journal.append(incident)
        except (OSError, BridgeError) as exc:
            log.error("cannot write incident %s to the journal under %s: %s", incident.id, self.journal.folder, exc)

    def _write(self, job: Callable[[], None]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            job()  # no event loop (a CLI, a unit test): write now
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incident-journal")
        self._writer.submit(job)

    def flush(self) -> None:
        """Wait for the journal writes queued so far (tests, shutdown)."""
        if self._writer is not None:
            self._writer.submit(lambda: None).result()
