"""Carry out a `RepairPlan` (repair_plan.py) and record it: the executor half of plan-then-execute.

Order, and why: stop the sessions the plan names (a folder is never swapped under a running
runtime), restore the folder or put back the vanished key files, put back creds.json, start the
session again, then record the incident with the `IncidentDesk` (journal, `incident` event, its one
alert; damage the sessions see too is alerted before the first step instead). Every
byte goes through the store (`Snapshots.restore_detailed`, `AuthStore.restore_creds`, `durable`);
nothing is deleted, and what a repair replaces is kept: a damaged creds.json under
`.bridge/creds-backups/`, a replaced folder under `.bridge/replaced/`.

A step that fails leaves the ones before it done and says so in the incident (`error`); the
watcher keeps the incident open and retries the repair quietly (no second alert).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bridge.errors import BridgeError, CredsCorruptError
from bridge.events import EventBus, Severity
from bridge.metrics import MONITOR_RESTORES
from bridge.monitor.folder_check import Damage, inspect_folder
from bridge.monitor.incidents import Incident, new_incident_id
from bridge.monitor.repair_plan import CredsCandidate, RepairAction, RepairPlan
from bridge.sessions.incident_desk import IncidentDesk, damage_key, identity_key, monitor_holder, storage_key
from bridge.store import durable
from bridge.store.auth_store import AuthStore
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.identity import Identity, identity_of
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots import Snapshots

log = logging.getLogger("bridge.monitor")


class SessionStatus(Protocol):
    """The part of `SessionInfo` the monitor reads."""

    @property
    def state(self) -> str: ...

    @property
    def archived(self) -> bool: ...


class SessionControl(Protocol):
    """What the monitor needs from the SessionManager to repair a folder under a live session.

    `get` raises `SessionNotFound` for a folder the bridge does not manage (it is repaired
    without any stop/start). `incident` tells the session its stop/start is part of an incident
    the monitor already alerted for (its follow-on states carry the id and raise no second alert).
    Methods may be plain or coroutines.
    """

    def get(self, session_id: str) -> SessionStatus | Awaitable[SessionStatus]: ...

    def stop(self, session_id: str, *, incident: str | None = None) -> Any: ...

    def start(self, session_id: str, *, incident: str | None = None) -> Any: ...


SEEN_BY_SESSIONS = frozenset({Damage.FOLDERS_SWAPPED, Damage.FOLDER_UNREADABLE})
"""Damage the sessions notice on their own too (a swap refuses both sessions' next start, an
unreadable folder fails their writes): alerted before anything is done, so the sessions the plan
stops carry its id, and whichever side saw it first opened the one incident."""


def incident_key(damage: Damage, sessions: Sequence[str]) -> str:
    """The `IncidentDesk` key of damage to these sessions' folders (the keys are made there)."""
    if damage is Damage.FOLDERS_SWAPPED:
        return identity_key(sessions)
    if damage is Damage.FOLDER_UNREADABLE:
        return storage_key()
    return damage_key(sessions[0], damage.value)


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class RepairExecutor:
    """Executes plans for the watcher; see the module docstring."""

    def __init__(
        self,
        snapshots: Snapshots,
        bus: EventBus,
        desk: IncidentDesk,
        sessions: SessionControl | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.bus = bus
        self.desk = desk
        self.sessions = sessions

    async def execute(self, plan: RepairPlan, *, detected_at: float, expected: Identity | None) -> Incident:
        """Carry out `plan`; returns its incident (journalled, published, alerted once).

        Damage the sessions see too (`SEEN_BY_SESSIONS`) is alerted through the desk before
        anything is done; if a session opened that incident first, the monitor's findings go into
        its record and nothing is raised again. Other damage is alerted once it is repaired (the
        alert says what was done); an incident repaired at once ends with that alert.
        """
        sessions = list(plan.sessions) or [plan.session]
        incident = Incident(
            id=new_incident_id(), session=plan.session, kind=plan.damage.value, detail=plan.detail,
            detected_at=detected_at, severity=plan.severity, action=plan.action.value,
            sessions=sessions, warning=plan.warning, error=plan.error, next_step=plan.next_step,
        )
        log.critical("session %s: %s (%s); plan: %s", plan.session, plan.damage.value, plan.detail, plan.action.value)
        key = incident_key(plan.damage, sessions)
        holders = [monitor_holder(sid) for sid in sessions]
        if plan.damage in SEEN_BY_SESSIONS:
            message = plan.detail + (f". Stopping session(s) {', '.join(plan.stop)}" if plan.stop else "")
            message += f". Next: {plan.next_step}" if plan.next_step else ""
            found, joined = self.desk.open(key, incident, holders, alert=message, publish=False)
            if joined:
                found.joined = True
                found.next_step = found.next_step or plan.next_step
                found.error = found.error or plan.error
            await self.apply(plan, found, expected=expected)
            self.desk.record(found)
            return found
        await self.apply(plan, incident, expected=expected)
        severity: Severity = "critical" if incident.severity == "critical" else "warning"
        found, _ = self.desk.open(key, incident, holders, alert=alert_text(incident), severity=severity,
                                  restored=incident.restored)
        if incident.restored:
            self.desk.end(key, "repaired", notify=False)
        return found

    def resolved(self, incident: Incident, how: str) -> None:
        """The monitor is done with `incident` (repaired, or readable again): it lets go of it; the
        desk ends it (one `info` notice) once nobody else holds it."""
        sessions = incident.sessions or [incident.session]
        key = incident_key(Damage(incident.kind), sessions) if incident.kind in _DAMAGE else storage_key()
        for sid in sessions:
            self.desk.leave(key, monitor_holder(sid), how)

    async def apply(self, plan: RepairPlan, incident: Incident, *, expected: Identity | None) -> None:
        """The file and session steps of `plan`, noted in `incident` (no journal, no alert)."""
        folder = await asyncio.to_thread(self.snapshots.session_folder, plan.session)
        before = await asyncio.to_thread(inspect_folder, folder)
        incident.keys_before = len(before.key_files)
        await self._stop(plan, incident)
        try:
            await self._repair_files(plan, incident, folder, expected)
        except (BridgeError, OSError) as exc:
            incident.error = f"{plan.action.value} failed: {exc}" + (
                "; the session was stopped for it and is left stopped" if plan.restart else ""
            )
            incident.restored = False
        else:
            if plan.changes_files:
                incident.restored = True
                incident.seconds_to_restore = round(time.time() - incident.detected_at, 3)
                MONITOR_RESTORES.labels(reason=plan.damage.value).inc()
        if plan.changes_files:
            after = await asyncio.to_thread(inspect_folder, folder)
            incident.keys_after = len(after.key_files)
        if plan.restart and incident.restored and self.sessions is not None:
            try:
                await maybe_await(self.sessions.start(plan.session, incident=incident.id))
                incident.session_restarted = True
            except BridgeError as exc:
                incident.error = f"repaired, but starting the session again failed: {exc}"

    async def _stop(self, plan: RepairPlan, incident: Incident) -> None:
        if self.sessions is None:
            return
        for sid in plan.stop:
            try:
                await maybe_await(self.sessions.stop(sid, incident=incident.id))
                incident.stopped.append(sid)
            except BridgeError as exc:
                log.error("could not stop session %s for incident %s: %s", sid, incident.id, exc)
                incident.error = f"stopping session {sid} failed: {exc}"

    async def _repair_files(
        self, plan: RepairPlan, incident: Incident, folder: Path, expected: Identity | None
    ) -> None:
        if plan.action is RepairAction.RESTORE_FOLDER and plan.snapshot is not None:
            outcome = await asyncio.to_thread(self.snapshots.restore_detailed, plan.session, plan.snapshot.id)
            incident.snapshot = plan.snapshot.id
            incident.pre_restore_snapshot = outcome.pre_restore_snapshot
            incident.replaced_path = outcome.replaced_path
        if plan.action is RepairAction.PUT_BACK_KEYS and plan.snapshot is not None:
            incident.snapshot = plan.snapshot.id
            incident.keys_put_back = await asyncio.to_thread(self._put_back_keys, plan, folder)
        if plan.creds is not None:
            restored = plan.action is RepairAction.RESTORE_FOLDER
            written, kept = await asyncio.to_thread(
                self._put_back_creds, plan.session, folder, plan.creds, expected, only_if_damaged=not restored
            )
            if written or not restored:
                incident.creds_source = plan.creds.source
            if kept is not None and incident.replaced_path is None:
                incident.replaced_path = kept

    def _put_back_keys(self, plan: RepairPlan, folder: Path) -> int:
        """Write the plan's vanished key files back from its snapshot; a file that exists again
        (written by the session meanwhile) is left alone. Returns how many were written."""
        assert plan.snapshot is not None
        manifest = self.snapshots.get(plan.session, plan.snapshot.id)
        shas = {f.name: f.sha256 for f in manifest.files}
        files = {
            name: self.snapshots.read_object(shas[name])
            for name in sorted(plan.keys)
            if name in shas and not (folder / name).exists()
        }
        durable.atomic_write_many(folder, files)
        return len(files)

    def _put_back_creds(
        self, session: str, folder: Path, creds: CredsCandidate, expected: Identity | None, *, only_if_damaged: bool
    ) -> tuple[bool, str | None]:
        """Put `creds` back as the folder's creds.json (`AuthStore.restore_creds`: key files are not
        touched, the creds found are kept as evidence under `.bridge/creds-backups/`) unless it holds
        them already, or (with `only_if_damaged`) the session's own writer already put intact creds
        of this account back. Returns (written, where the replaced creds were kept)."""
        path = folder / CREDS_FILE
        try:
            raw: bytes | None = path.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw == creds.text.encode("utf-8"):
            return False, None
        if only_if_damaged and raw is not None and _is_own(raw, expected):
            log.info("session %s: creds.json was repaired by its own writer meanwhile", session)
            return False, None
        store = AuthStore(folder, session_id=session, bridge_dir=self.snapshots.bridge_dir)
        try:
            kept = store.restore_creds(creds.text, reason="monitor-repair")
        finally:
            store.close()  # releases this use of the session's journal (shared with a running session)
        log.warning("session %s: put back creds.json from %s", session, creds.source)
        return True, str(kept) if kept is not None and raw else None


_DAMAGE = frozenset(d.value for d in Damage)


def _is_own(raw: bytes, expected: Identity | None) -> bool:
    """Valid creds (of `expected`'s linked account, when known)."""
    try:
        creds = validate_creds_text(raw.decode("utf-8"))
    except (CredsCorruptError, UnicodeDecodeError):
        return False
    return expected is None or (is_registered(creds) and expected.same_account(identity_of(creds)))


def alert_text(incident: Incident) -> str:
    """The alert's message: what happened, what was done, what is left to do."""
    parts = [incident.detail]
    if incident.restored:
        done = {
            "put_back_creds": f"Put back creds.json from {incident.creds_source}; key files untouched",
            "put_back_keys": f"Put back {incident.keys_put_back} key files from snapshot {incident.snapshot}; "
                             "nothing else touched",
            "restore_folder": f"Restored snapshot {incident.snapshot}"
                              + (f" and creds.json from {incident.creds_source}" if incident.creds_source else ""),
        }[incident.action]
        parts.append(f"{done} in {incident.seconds_to_restore} s")
        if incident.session_restarted:
            parts.append("session restarted")
        if incident.replaced_path:
            parts.append(f"what was replaced is kept at {incident.replaced_path}")
    elif incident.stopped:
        parts.append(f"Stopped session(s) {', '.join(incident.stopped)}")
    else:
        parts.append("NOT repaired" + (f": {incident.error}" if incident.error else ""))
    if incident.warning:
        parts.append(f"warning: {incident.warning}")
    if incident.restored and incident.error:
        parts.append(f"warning: {incident.error}")
    if incident.next_step:
        parts.append(f"Next: {incident.next_step}")
    return ". ".join(parts)
