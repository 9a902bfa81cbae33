"""Carry out a `RepairPlan` (repair_plan.py) and record it: the executor half of plan-then-execute.

Order, and why: stop the sessions the plan names (a folder is never swapped under a running
runtime), restore the folder or put back the vanished key files, put back creds.json, start the
session again, then append the incident to the journal, publish it and raise its one alert. Every
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
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

from bridge.errors import BridgeError, CredsCorruptError
from bridge.events import EventBus, EventKind
from bridge.metrics import MONITOR_RESTORES
from bridge.monitor.folder_check import Damage, inspect_folder
from bridge.monitor.incidents import Incident, IncidentLog, new_incident_id
from bridge.monitor.repair_plan import CredsCandidate, RepairAction, RepairPlan
from bridge.sessions.incident_desk import IncidentDesk
from bridge.sessions.session import STORAGE_INCIDENT
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


def desk_key(plan: RepairPlan) -> str | None:
    """The sessions' `IncidentDesk` key of a cause they may notice too (and alert for) on their
    own: a swap refuses both sessions' next start, an unreadable folder fails their writes. The
    monitor joins that incident instead of opening a second one."""
    if plan.damage is Damage.FOLDERS_SWAPPED:
        return "identity:" + "+".join(sorted(plan.sessions))  # as Session._refused_start names it
    if plan.damage is Damage.FOLDER_UNREADABLE:
        return STORAGE_INCIDENT
    return None


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class RepairExecutor:
    """Executes plans for the watcher; see the module docstring."""

    def __init__(
        self,
        snapshots: Snapshots,
        bus: EventBus,
        journal: IncidentLog,
        sessions: SessionControl | None = None,
        desk: IncidentDesk | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.bus = bus
        self.journal = journal
        self.sessions = sessions
        self.desk = desk

    async def execute(self, plan: RepairPlan, *, detected_at: float, expected: Identity | None) -> Incident:
        """Carry out `plan`; returns the incident (already journalled, published and alerted once).

        A cause the sessions' `IncidentDesk` knows (`desk_key`) is alerted through the desk before
        anything is done, so its incident id is the one the stopped sessions carry; if a session
        opened it first, the monitor joins it and raises nothing.
        """
        incident = Incident(
            id=new_incident_id(), session=plan.session, kind=plan.damage.value, detail=plan.detail,
            detected_at=detected_at, severity=plan.severity, action=plan.action.value,
            sessions=list(plan.sessions), warning=plan.warning, error=plan.error, next_step=plan.next_step,
        )
        log.critical("session %s: %s (%s); plan: %s", plan.session, plan.damage.value, plan.detail, plan.action.value)
        key = desk_key(plan)
        alerted = False
        if self.desk is not None and key is not None:
            message = plan.detail + (f". Stopping session(s) {', '.join(plan.stop)}" if plan.stop else "")
            message += f". Next: {plan.next_step}" if plan.next_step else ""
            joined = self.desk.get(key) is not None
            incident.id = self.desk.join(key, plan.session, plan.damage.value, message)
            for sid in plan.sessions[1:]:
                self.desk.join(key, sid, plan.damage.value, message)
            incident.joined = joined
            alerted = True
        await self.apply(plan, incident, expected=expected)
        await self.record(incident, alert=not alerted)
        return incident

    def resolved(self, incident: Incident) -> None:
        """The incident is over: leave the desk's incident it was alerted through, if any."""
        key = desk_key_of(incident)
        if self.desk is not None and key is not None:
            for sid in incident.sessions or [incident.session]:
                self.desk.leave(key, sid)

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

    async def record(self, incident: Incident, *, alert: bool = True) -> None:
        """Journal and publish one incident, and raise its one alert (unless the desk did)."""
        try:
            await asyncio.to_thread(self.journal.append, incident)
        except (OSError, BridgeError) as exc:
            log.error("cannot write the incident journal under %s: %s", self.journal.folder, exc)
        self.bus.publish(incident.session, EventKind.INCIDENT, incident.as_dict())
        if not alert:
            return
        self.bus.alert(
            incident.session, incident.kind, "critical" if incident.severity == "critical" else "warning",
            alert_text(incident), incident=incident.id, restored=incident.restored,
        )


def desk_key_of(incident: Incident) -> str | None:
    """`desk_key` of a recorded incident."""
    if incident.kind == Damage.FOLDERS_SWAPPED.value:
        return "identity:" + "+".join(sorted(incident.sessions))
    if incident.kind == Damage.FOLDER_UNREADABLE.value:
        return STORAGE_INCIDENT
    return None


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
