"""AuthWatcher: notices damage to any auth folder and puts the last good snapshot back.

The legacy monitor "repaired" a broken auth folder with `rm -rf`, and every tenant had to scan a
QR again. This one can only add: it takes snapshots and restores them; the folder it replaces is
moved under `.bridge/replaced/` by `Snapshots.restore` (never deleted). The monitor's test suite
runs under an audit hook that fails on any delete or truncate under the auth root.

How it notices: watchfiles events on the auth root (fast path, debounced) plus a full scan every
`Settings.monitor_scan_interval` (catches whatever the events missed, adopted folders outside the
root, and damage that happened while the monitor was down). Damage must still be there after
`Settings.monitor_confirm_delay`, so a legacy writer caught mid-`writeFile` is not "repaired".

What it does (per session, one at a time): pick the newest intact snapshot (with registered creds
if the folder had them), stop the session if the bridge runs it, restore, start it again, append
an incident to the journal, publish an `incident` event and raise one critical alert. It also
snapshots healthy folders when they change (so there is something recent to restore) and on a
schedule (`snapshot_all`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import watchfiles

from bridge.config import Settings
from bridge.errors import BridgeError, CredsCorruptError, SessionNotFound
from bridge.events import EventBus
from bridge.metrics import MONITOR_RESTORES
from bridge.monitor.folder_check import Finding, FolderLook, diagnose, inspect_folder
from bridge.monitor.incidents import Incident, IncidentLog, new_incident_id
from bridge.store.adopt import read_adopted
from bridge.store.creds import validate_creds_text
from bridge.store.layout import CREDS_FILE, validate_session_id
from bridge.store.snapshots import SnapshotManifest, Snapshots

log = logging.getLogger("bridge.monitor")

PRE_RESTORE = "pre-restore"
ACTIVE_STATES = frozenset({"starting", "qr", "pairing", "connecting", "open", "reconnecting"})
# While a managed session is linking (a start from logged_out links a new device over the kept
# folder: the store snapshots the registered creds, then saves fresh ones), unregistered creds
# replacing registered ones are the bridge's own doing, not damage.
RELINKING_STATES = frozenset({"starting", "connecting", "qr", "pairing"})


class SessionStatus(Protocol):
    """The part of `SessionInfo` the monitor reads."""

    @property
    def state(self) -> str: ...

    @property
    def archived(self) -> bool: ...


class SessionControl(Protocol):
    """What the monitor needs from the SessionManager to restore a folder under a live session.

    `get` raises `SessionNotFound` for a folder the bridge does not manage (it is restored
    without any stop/start). Methods may be plain or coroutines.
    """

    def get(self, session_id: str) -> SessionStatus | Awaitable[SessionStatus]: ...

    def stop(self, session_id: str) -> Any: ...

    def start(self, session_id: str) -> Any: ...


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def newest_first(snapshots: Snapshots, session_id: str) -> Iterator[SnapshotManifest]:
    """A session's snapshots newest first, read lazily.

    Manifest names are time-sortable ids, so the newest is found without decoding the hundreds of
    older manifests a long-running session accumulates (`Snapshots.list` reads them all, and the
    monitor looks after every write burst).
    """
    folder = snapshots.snapshots_dir / session_id
    try:
        names = sorted((p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")),
                       reverse=True)
    except FileNotFoundError:
        return
    for path in names:
        try:
            yield snapshots.load_manifest(path)
        except BridgeError as exc:
            log.warning("%s", exc)


class _StopWhen:
    """A stop event for watchfiles (it only calls `is_set`) that is "set" when `predicate` holds."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def is_set(self) -> bool:
        return self._predicate()


class AuthWatcher:
    """Watches every auth folder under `settings.auth_root`; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        snapshots: Snapshots,
        *,
        sessions: SessionControl | None = None,
        incidents: IncidentLog | None = None,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.auth_root)
        self._watch_root = self.root.absolute()
        self.bus = bus
        self.snapshots = snapshots
        self.sessions = sessions
        self.journal = incidents or IncidentLog(settings.bridge_dir)
        self.incidents: list[Incident] = []
        self._baseline: dict[str, FolderLook] = {}
        self._loss_started: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty: set[str] = set()
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()

    # ----- which folders ----------------------------------------------------------------
    def session_ids(self) -> set[str]:
        """Folders under the root, sessions with snapshots, and adopted folders elsewhere."""
        found: set[str] = set()
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(".") or not path.is_dir():
                    continue
                with contextlib.suppress(BridgeError):
                    found.add(validate_session_id(path.name))
        found.update(self.snapshots.sessions())
        with contextlib.suppress(BridgeError):
            found.update(read_adopted(self.root).sessions)
        return found

    # ----- running ----------------------------------------------------------------------
    async def run(self) -> None:
        """Watch and scan until cancelled (or `stop()`); never raises for a damaged folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        # watchfiles reports absolute, resolved paths; map them back against the resolved root.
        self._watch_root = self.root.resolve()
        self._stop.clear()
        tasks = [
            asyncio.create_task(self._watch_loop(), name="monitor-watch"),
            asyncio.create_task(self._scan_loop(), name="monitor-scan"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._stop.set()
            for task in [*tasks, *self._drains.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._drains.values(), return_exceptions=True)

    def stop(self) -> None:
        self._stop.set()

    async def _scan_loop(self) -> None:
        while not self._stop.is_set():
            if await asyncio.to_thread(self._root_identity) is None:
                self.bus.alert(
                    None, "auth_root_missing", "critical",
                    f"the auth root {self.root} itself is gone (and .bridge/ with its snapshots); "
                    "restore it from a backup (`python -m bridge backup` archives)",
                )
            await self.scan()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.monitor_scan_interval)

    def _root_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._watch_root)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    async def _watch_loop(self) -> None:
        """watchfiles over the root; re-armed when the root is replaced (a watch on a deleted
        folder would stay silent forever) or the watcher fails."""
        while not self._stop.is_set():
            watched = await asyncio.to_thread(self._root_identity)
            if watched is None:
                await self._pause()
                continue
            until = _StopWhen(functools.partial(self._watch_should_end, watched))
            try:
                async for changes in watchfiles.awatch(
                    self._watch_root,
                    watch_filter=self._interesting,
                    debounce=150,
                    step=30,
                    stop_event=until,
                    recursive=True,
                ):
                    for sid in {self._session_of(Path(path)) for _, path in changes}:
                        if sid is not None:
                            self.kick(sid)
            except (RuntimeError, OSError) as exc:
                log.error("watching %s failed (%s); relying on the periodic scan for now", self.root, exc)
                await self._pause()

    def _watch_should_end(self, watched: tuple[int, int]) -> bool:
        return self._stop.is_set() or self._root_identity() != watched

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(1.0, self.settings.monitor_scan_interval))

    def _session_of(self, path: Path) -> str | None:
        try:
            first = path.relative_to(self._watch_root).parts[0]
        except (ValueError, IndexError):
            return None
        return None if first.startswith(".") else first

    def _interesting(self, change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self._watch_root).parts
        except ValueError:
            return False
        return bool(parts) and not any(part.startswith(".") for part in parts)

    def kick(self, session_id: str) -> None:
        """Check a session soon (coalesces bursts of events into one check at a time)."""
        self._dirty.add(session_id)
        task = self._drains.get(session_id)
        if task is None or task.done():
            self._drains[session_id] = asyncio.create_task(self._drain(session_id), name=f"monitor-{session_id}")

    async def _drain(self, session_id: str) -> None:
        while session_id in self._dirty and not self._stop.is_set():
            self._dirty.discard(session_id)
            try:
                await self.check(session_id)
            except Exception:
                log.exception("monitor check of session %s failed", session_id)

    async def scan(self) -> list[Incident]:
        """Check every known session folder once; returns the incidents handled."""
        found: list[Incident] = []
        try:
            sids = await asyncio.to_thread(self.session_ids)
        except OSError as exc:
            log.error("cannot list %s: %s", self.root, exc)
            return found
        for sid in sorted(sids):
            try:
                incident = await self.check(sid)
            except Exception:
                log.exception("monitor check of session %s failed", sid)
                continue
            if incident is not None:
                found.append(incident)
        return found

    # ----- one session ------------------------------------------------------------------
    async def check(self, session_id: str) -> Incident | None:
        """Look at one folder; restore it if it stays damaged. Returns the incident, if any."""
        async with self._locks.setdefault(session_id, asyncio.Lock()):
            status = await self._status(session_id)
            if status is not None and status.archived:
                return None
            relinking = status is not None and str(status.state) in RELINKING_STATES
            folder = await asyncio.to_thread(self.snapshots.session_folder, session_id)
            detected_at = time.time()
            look, finding = await self._look(session_id, folder, relinking)
            if finding is not None:
                await asyncio.sleep(self.settings.monitor_confirm_delay)
                look, finding = await self._look(session_id, folder, relinking)
            if finding is None:
                if look.healthy:
                    self._remember_healthy(session_id, look)
                    await self._maybe_snapshot(session_id, look)
                return None
            return await self._repair(session_id, folder, finding, detected_at, status)

    def _remember_healthy(self, session_id: str, look: FolderLook) -> None:
        """Make `look` the baseline, but keep key files lost within the mass-delete window in it.

        A script that removes key files one by one (or a glob `rm` caught half way by a scan) must
        still add up to a mass deletion: losses are measured against the key set from before they
        began, until `monitor_mass_delete_window` has passed without reaching the threshold.
        """
        previous = self._baseline.get(session_id)
        now = time.monotonic()
        if previous is not None and not previous.key_files <= look.key_files:
            started = self._loss_started.setdefault(session_id, now)
            if now - started < self.settings.monitor_mass_delete_window:
                look = dataclasses.replace(look, key_files=look.key_files | previous.key_files)
            else:
                del self._loss_started[session_id]
        elif previous is not None and now - self._loss_started.get(session_id, now) >= (
            self.settings.monitor_mass_delete_window
        ):
            self._loss_started.pop(session_id, None)
        self._baseline[session_id] = look

    async def _status(self, session_id: str) -> SessionStatus | None:
        if self.sessions is None:
            return None
        try:
            status: SessionStatus = await _maybe_await(self.sessions.get(session_id))
        except SessionNotFound:
            return None
        return status

    async def _look(self, session_id: str, folder: Path, relinking: bool) -> tuple[FolderLook, Finding | None]:
        look = await asyncio.to_thread(inspect_folder, folder)
        # Snapshot history only matters for a damaged or unregistered folder; skip the reads otherwise.
        needs_history = not look.healthy or (not look.registered and not relinking)
        usable = await asyncio.to_thread(self._newest_usable, session_id) if needs_history else None
        finding = diagnose(
            look,
            self._baseline.get(session_id),
            has_snapshot=usable is not None,
            snapshot_registered=usable is not None and usable.registered,
            relinking=relinking,
            mass_delete_min=self.settings.monitor_mass_delete_min,
        )
        return look, finding

    def _newest_usable(self, session_id: str) -> SnapshotManifest | None:
        """Newest snapshot that is not a record of damage (pre-restore copies are evidence only)."""
        for manifest in newest_first(self.snapshots, session_id):
            if manifest.reason != PRE_RESTORE and any(f.name == CREDS_FILE for f in manifest.files):
                return manifest
        return None

    def pick_snapshot(self, session_id: str, wants_registered: bool) -> SnapshotManifest | None:
        """Newest intact snapshot with valid creds (registered ones first if the folder had them)."""
        for registered_only in ([True, False] if wants_registered else [False]):
            for manifest in newest_first(self.snapshots, session_id):
                if manifest.reason == PRE_RESTORE or (registered_only and not manifest.registered):
                    continue
                if self._intact(manifest):
                    return manifest
        return None

    def _intact(self, manifest: SnapshotManifest) -> bool:
        try:
            if not self.snapshots.verify(manifest).ok:
                return False
            creds = next(f for f in manifest.files if f.name == CREDS_FILE)
            validate_creds_text(self.snapshots.read_object(creds.sha256).decode("utf-8"))
        except (StopIteration, BridgeError, UnicodeDecodeError, CredsCorruptError):
            return False
        return True

    async def _maybe_snapshot(self, session_id: str, look: FolderLook) -> None:
        """Snapshot a healthy folder: first sight, registration change, creds change (rate-limited)."""
        usable = await asyncio.to_thread(self._newest_usable, session_id)
        reason: str | None = None
        if usable is None:
            reason = "monitor-first"
        elif usable.registered != look.registered:
            reason = "monitor-registration"
        else:
            # Only a creds change is worth a snapshot between scheduled ones (BRIDGE_SNAPSHOT_MIN_INTERVAL):
            # key files change with every message, and each manifest lists every file of the folder.
            creds_sha = next((f.sha256 for f in usable.files if f.name == CREDS_FILE), None)
            due = time.time() - usable.created_at >= self.settings.snapshot_min_interval
            if due and creds_sha != look.creds_sha256:
                reason = "monitor-change"
        if reason is None:
            return
        try:
            manifest = await asyncio.to_thread(self.snapshots.create, session_id, reason)
        except BridgeError as exc:
            log.warning("snapshot of %s (%s) failed: %s; will retry", session_id, reason, exc)
            return
        self._announce(manifest)

    def _announce(self, manifest: SnapshotManifest) -> None:
        data = {"id": manifest.id, "reason": manifest.reason, "registered": manifest.registered}
        self.bus.publish(manifest.session, "snapshot", data)

    async def snapshot_all(self, reason: str = "scheduled") -> list[SnapshotManifest]:
        """Snapshot every healthy folder now (the `Settings.snapshot_interval` schedule)."""
        taken: list[SnapshotManifest] = []
        for sid in sorted(await asyncio.to_thread(self.session_ids)):
            async with self._locks.setdefault(sid, asyncio.Lock()):
                folder = await asyncio.to_thread(self.snapshots.session_folder, sid)
                look = await asyncio.to_thread(inspect_folder, folder)
                if not look.healthy:
                    continue
                try:
                    manifest = await asyncio.to_thread(self.snapshots.create, sid, reason)
                except BridgeError as exc:
                    log.warning("scheduled snapshot of %s failed: %s", sid, exc)
                    continue
                taken.append(manifest)
                self._announce(manifest)
        return taken

    # ----- repair -----------------------------------------------------------------------
    async def _repair(
        self, session_id: str, folder: Path, finding: Finding, detected_at: float, status: SessionStatus | None
    ) -> Incident:
        incident = Incident(
            id=new_incident_id(),
            session=session_id,
            kind=finding.damage.value,
            detail=finding.detail,
            detected_at=detected_at,
        )
        log.critical("session %s: %s (%s); restoring", session_id, finding.damage.value, finding.detail)
        manifest = await asyncio.to_thread(self.pick_snapshot, session_id, finding.wants_registered)
        if manifest is None:
            incident.error = (
                "no intact snapshot to restore from; nothing was changed. Restore a backup "
                "(`python -m bridge restore`) or link the device again"
            )
            await self._finish(incident)
            return incident
        was_running = status is not None and str(status.state) in ACTIVE_STATES
        if was_running and self.sessions is not None:
            try:
                await _maybe_await(self.sessions.stop(session_id))
            except BridgeError as exc:
                log.error("could not stop session %s before restoring: %s", session_id, exc)
        try:
            outcome = await asyncio.to_thread(self.snapshots.restore_detailed, session_id, manifest.id)
        except (BridgeError, OSError) as exc:
            incident.error = f"restore of snapshot {manifest.id} failed: {exc}" + (
                "; the session was stopped for the restore and is left stopped" if was_running else ""
            )
        else:
            incident.restored = True
            incident.snapshot = manifest.id
            incident.pre_restore_snapshot = outcome.pre_restore_snapshot
            incident.replaced_path = outcome.replaced_path
            incident.seconds_to_restore = round(time.time() - detected_at, 3)
            MONITOR_RESTORES.labels(reason=finding.damage.value).inc()
            self._baseline[session_id] = await asyncio.to_thread(inspect_folder, folder)
        if incident.restored and was_running and self.sessions is not None:
            try:
                await _maybe_await(self.sessions.start(session_id))
                incident.session_restarted = True
            except BridgeError as exc:
                incident.error = f"restored, but starting the session again failed: {exc}"
        await self._finish(incident)
        return incident

    async def _finish(self, incident: Incident) -> None:
        try:
            await asyncio.to_thread(self.journal.append, incident)
        except OSError as exc:
            log.error("cannot write the incident journal under %s: %s", self.journal.folder, exc)
        self.incidents.append(incident)
        self.bus.publish(incident.session, "incident", incident.as_dict())
        if incident.restored:
            message = (
                f"{incident.detail}. Restored snapshot {incident.snapshot} in {incident.seconds_to_restore} s"
                + ("; session restarted" if incident.session_restarted else "")
                + (f"; the damaged folder is kept at {incident.replaced_path}" if incident.replaced_path else "")
                + (f" (warning: {incident.error})" if incident.error else "")
            )
        else:
            message = f"{incident.detail}. NOT restored: {incident.error}"
        self.bus.alert(
            incident.session, incident.kind, "critical", message,
            incident=incident.id, restored=incident.restored,
        )
