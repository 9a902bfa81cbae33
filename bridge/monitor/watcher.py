"""AuthWatcher: notices damage to any auth folder, has it repaired, and snapshots healthy ones.

The legacy monitor "repaired" a broken auth folder with `rm -rf`, and every tenant had to scan a
QR again. This one can only add: it puts back what was lost (repair_plan.py decides what,
repair.py does it) and takes snapshots; whatever a repair replaces is kept under
`.bridge/replaced/`. The monitor's test suite runs under an audit hook that fails on any delete
or truncate under the auth root.

How it notices: watchfiles events on the auth root (fast path, debounced) plus a scan every
`Settings.monitor_scan_interval` (catches whatever the events missed, adopted folders outside the
root, and damage that happened while the monitor was down). The scan stats every folder and fully
looks only at those whose signature changed since their last quiet look, plus a sweep slice, so
its cost follows the changes, not the tenants (scan_plan.py). Damage must still be there after
`Settings.monitor_confirm_delay`, so a legacy writer caught mid-`writeFile` is not "repaired".

What it decides here: when to look, which account each folder is expected to hold (checked on
every look: creds of another account stop the session), whether an incident is new or the one
already reported (exactly one alert per incident; an unresolved one is said once more, as `info`,
when it is over), and when to snapshot (snapshot_policy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from bridge.config import Settings
from bridge.errors import BridgeError, SessionNotFound, StoreError
from bridge.events import EventBus, EventKind
from bridge.monitor import history
from bridge.monitor.folder_check import (
    CREDS_DAMAGE,
    Damage,
    Finding,
    FolderLook,
    diagnose,
    inspect_folder,
    uploaded_prekeys,
)
from bridge.monitor.incidents import Incident, IncidentLog
from bridge.monitor.repair import RepairExecutor, SessionControl, SessionStatus, maybe_await
from bridge.monitor.repair_plan import CredsCandidate, RepairAction, RepairFacts, RepairPlan, plan_repair
from bridge.monitor.scan_plan import ScanPlan, Signature, signature
from bridge.monitor.snapshot_policy import (
    NewestSnapshot,
    SessionMemory,
    SnapshotBackoff,
    remember,
    settle_due,
    snapshot_reason,
)
from bridge.sessions.incident_desk import IncidentDesk, monitor_holder, storage_key
from bridge.sessions.state import ACTIVE, LINKING, SessionState
from bridge.sessions.storage_probe import probe_write
from bridge.store import durable, folders
from bridge.store.identity import Identity, IdentityBook, identity_of
from bridge.store.layout import CREDS_FILE, BridgeDirs
from bridge.store.snapshots import SnapshotManifest, Snapshots

__all__ = ["AuthWatcher", "SessionControl", "SessionStatus"]

log = logging.getLogger("bridge.monitor")

class _StopWhen:
    """A stop event for watchfiles (it only calls `is_set`) that is "set" when `predicate` holds."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def is_set(self) -> bool:
        return self._predicate()


@dataclass
class _OpenIncident:
    """An incident not repaired yet: the plan that opened it, and the sessions it still covers."""

    incident: Incident
    plan: RepairPlan
    pending: set[str] = field(default_factory=set)

    @property
    def signature(self) -> tuple[str, ...]:
        return self.plan.signature


def _state(status: SessionStatus | None) -> SessionState | None:
    if status is None:
        return None
    try:
        return SessionState(str(status.state))
    except ValueError:
        return None


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
        desk: IncidentDesk | None = None,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.auth_root)
        self._watch_root = self.root.absolute()
        self.bus = bus
        self.snapshots = snapshots
        self.sessions = sessions
        self.journal = incidents or IncidentLog(settings.bridge_dir)
        self.desk = desk if desk is not None else IncidentDesk(bus, self.journal)
        if self.desk.journal is None:
            self.desk.journal = self.journal
        self.executor = RepairExecutor(snapshots, bus, self.desk, sessions)
        self.incidents: list[Incident] = []
        self._baseline: dict[str, FolderLook] = {}
        self._loss_started: dict[str, float] = {}
        self.identities = IdentityBook(settings.bridge_dir)
        self._identity_problem: dict[str, str] = {}
        self._never_linked: set[str] = set()
        self._unrecorded: dict[str, Identity] = {}
        self._open: dict[str, _OpenIncident] = {}
        self._recent: dict[str, tuple[_OpenIncident, float]] = {}
        self._memory: dict[str, SessionMemory] = {}
        self._backoff: dict[str, SnapshotBackoff] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty: set[str] = set()
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._problems: dict[str, str] = {}
        self._in_storage_incident: set[str] = set()
        self._probed: set[str] = set()
        self._repairing = asyncio.Lock()
        self._stop = asyncio.Event()
        self.plan = ScanPlan()
        """Which folders the periodic scan fully looks at (scan_plan.py)."""
        self.looks = 0
        """Full looks at a folder taken so far (what scan_plan.py saves; read by benchmarks)."""
        self._dirs = BridgeDirs(settings.bridge_dir)

    # ----- which folders ----------------------------------------------------------------
    def session_ids(self) -> set[str]:
        """Session folders (`bridge.store.folders`: the root's and adopted ones, creds or not) and
        sessions that only have snapshots left (a removed folder). Raises StoreError when the
        root cannot be listed."""
        return set(self._session_folders())

    def _session_folders(self) -> dict[str, Path]:
        """`session_ids` with where each folder is (adopted.json read once, not once per session)."""
        found = {f.session: f.path for f in folders.root_folders(self.root, with_creds=False)}
        try:
            found.update((f.session, f.path) for f in folders.adopted_folders(self.root))
        except BridgeError as exc:  # a damaged adopted.json must not stop the watch over the rest
            self._once("adopted", f"adopted folders are not watched: {exc}")
        for sid in self.snapshots.sessions():
            found.setdefault(sid, self.root / sid)
        return found

    def _signature(self, session_id: str, folder: Path) -> Signature:
        return signature((folder, folder / CREDS_FILE, self._dirs.session_identity(session_id),
                          self._dirs.session_snapshots(session_id)))

    def _signatures(self) -> dict[str, Signature]:
        return {sid: self._signature(sid, folder) for sid, folder in self._session_folders().items()}

    def _once(self, topic: str, problem: str) -> None:
        """Log a standing problem once (again only when it changes), not on every scan."""
        if self._problems.get(topic) != problem:
            log.error("%s", problem)
        self._problems[topic] = problem

    # ----- running ----------------------------------------------------------------------
    async def run(self) -> None:
        """Watch and scan until cancelled (or `stop()`); never raises for a damaged folder."""
        try:
            await asyncio.to_thread(durable.make_dirs, self.root)
        except BridgeError as exc:
            log.error("cannot create the auth root: %s", exc)
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
            for timer in self._timers.values():
                timer.cancel()
            for task in [*tasks, *self._drains.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._drains.values(), return_exceptions=True)
            await asyncio.to_thread(self.desk.flush)

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

    def _kick_at(self, session_id: str, when: float) -> None:
        """Check a session again at monotonic time `when` (one pending timer per session)."""
        old = self._timers.pop(session_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[session_id] = loop.call_at(
            loop.time() + max(0.0, when - time.monotonic()) + 0.05, self.kick, session_id
        )

    async def _drain(self, session_id: str) -> None:
        while session_id in self._dirty and not self._stop.is_set():
            self._dirty.discard(session_id)
            try:
                await self.check(session_id)
            except Exception:
                log.exception("monitor check of session %s failed", session_id)

    async def scan(self, *, full: bool = False) -> list[Incident]:
        """Check the session folders that may have changed (every one with `full`, and on the
        first scan); returns the new incidents. See scan_plan.py for which ones are skipped."""
        found: list[Incident] = []
        try:
            signatures = await asyncio.to_thread(self._signatures)
        except (OSError, BridgeError) as exc:
            self._once("root", f"cannot list the session folders of {self.root}: {exc}")
            return found
        self._problems.pop("root", None)
        due = self.plan.due(signatures, interval=self.settings.monitor_scan_interval)
        for sid in sorted(signatures) if full else due:
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
        """Look at one folder; have it repaired if it stays damaged. Returns a new incident, if any."""
        async with self._locks.setdefault(session_id, asyncio.Lock()):
            self.plan.forget(session_id)
            status = await self._status(session_id)
            if status is not None and status.archived:
                return None
            state = _state(status)
            try:
                folder = await asyncio.to_thread(self.snapshots.session_folder, session_id)
            except BridgeError as exc:
                self._once(f"folder:{session_id}", f"session {session_id}: cannot tell where its folder is: {exc}")
                return None
            before = await asyncio.to_thread(self._signature, session_id, folder)
            incident = await self._examine(session_id, folder, state)
            self.plan.looked(session_id, before if incident is None and self._quiet(session_id) else None)
            return incident

    def _quiet(self, session_id: str) -> bool:
        """Nothing about the session to follow up on a later scan (an open incident, a repair
        within its window, a key loss being tracked, a failing snapshot, an unrecorded or
        unreadable identity): then the scan may skip it while its signature holds."""
        recent = self._recent.get(session_id)
        return not (
            session_id in self._open or session_id in self._in_storage_incident
            or session_id in self._unrecorded or session_id in self._identity_problem
            or session_id in self._loss_started or self.snapshot_failures(session_id)
            or (recent is not None and time.monotonic() < recent[1])
        )

    async def _examine(self, session_id: str, folder: Path, state: SessionState | None) -> Incident | None:
        """`check` under the session's lock: look, confirm, and plan and execute a repair."""
        relinking = state in LINKING
        detected_at = time.time()
        look, finding = await self._look(session_id, folder, relinking)
        if finding is not None:
            await asyncio.sleep(self.settings.monitor_confirm_delay)
            look, finding = await self._look(session_id, folder, relinking)
        if finding is None:
            await self._healthy(session_id, look)
            return None
        async with self._repairing:  # both halves of a swap must see one incident
            facts = await self._facts(session_id, finding, look, state)
            plan = plan_repair(facts)
            return await self._handle(plan, detected_at, facts.expected, folder)

    async def _status(self, session_id: str) -> SessionStatus | None:
        if self.sessions is None:
            return None
        try:
            status: SessionStatus = await maybe_await(self.sessions.get(session_id))
        except SessionNotFound:
            return None
        return status

    async def _look(self, session_id: str, folder: Path, relinking: bool) -> tuple[FolderLook, Finding | None]:
        self.looks += 1
        look = await asyncio.to_thread(inspect_folder, folder)
        expected = await self._expected_identity(session_id)
        baseline = self._baseline.get(session_id)
        owner = await self._owner_of(look, expected, session_id)
        # A link in a folder that held unlinked creds (first link, or a relink the bridge runs) gives
        # the folder a new account; anything else that changes it is damage or a mix-up.
        linked_here = baseline is not None and baseline.healthy and not baseline.registered
        had_creds = expected is not None or (baseline is not None and baseline.healthy)
        if not had_creds and not look.healthy and look.unreadable is None:
            had_creds = await asyncio.to_thread(history.has_snapshots, self.snapshots, session_id)
        finding = diagnose(
            look,
            baseline,
            expected=None if relinking or linked_here else expected,
            owner=owner,
            had_creds=had_creds,
            relinking=relinking,
            mass_delete_min=self.settings.monitor_mass_delete_min,
            deletion_going_on=self._deletion_going_on(session_id),
        )
        return look, finding

    def _deletion_going_on(self, session_id: str) -> bool:
        recent = self._recent.get(session_id)
        return (recent is not None and time.monotonic() < recent[1]
                and recent[0].incident.kind == Damage.KEYS_MASS_DELETED.value)

    async def _expected_identity(self, session_id: str) -> Identity | None:
        """The linked account this session's folder belongs to: recorded in the IdentityBook (by
        whoever linked it, or by this monitor when it first saw it linked), else learnt from the
        newest linked snapshot. None when the session was never linked."""
        try:
            expected = await asyncio.to_thread(self.identities.expected, session_id)
        except BridgeError as exc:
            if self._identity_problem.get(session_id) != str(exc):
                log.error("session %s: %s", session_id, exc)
            self._identity_problem[session_id] = str(exc)
            expected = None
        else:
            self._identity_problem.pop(session_id, None)
        if expected is not None and expected.jid is not None:
            return expected
        if session_id in self._unrecorded:
            return self._unrecorded[session_id]
        if session_id in self._never_linked:
            return None
        learnt = await asyncio.to_thread(history.linked_identity, self.snapshots, session_id)
        if learnt is None:
            self._never_linked.add(session_id)  # until this monitor snapshots it again
        elif expected is None or expected.same_account(learnt):
            await self._record(session_id, learnt)
            return learnt
        return None

    async def _record(self, session_id: str, identity: Identity) -> None:
        """Record the folder's account in the IdentityBook; when storage refuses, keep it in memory
        (it is still checked) and say so once, then retry quietly on later looks."""
        try:
            await asyncio.to_thread(self.identities.record, session_id, identity)
        except BridgeError as exc:
            if self._unrecorded.get(session_id) != identity:
                log.warning("session %s: could not record its account %s (retrying on later looks): %s",
                            session_id, identity.describe(), exc)
            self._unrecorded[session_id] = identity
        else:
            self._unrecorded.pop(session_id, None)

    async def _owner_of(self, look: FolderLook, expected: Identity | None, session_id: str) -> str | None:
        """Another session whose account the folder's linked creds are, if any (only asked when
        they are not plainly this session's own)."""
        found = look.identity
        if found is None or not look.registered or (expected is not None and expected.same_account(found)):
            return None
        try:
            return await asyncio.to_thread(self.identities.owner_of, found, excluding=session_id)
        except BridgeError as exc:
            log.warning("cannot tell whose account %s is: %s", found.describe(), exc)
            return None

    async def _facts(
        self, session_id: str, finding: Finding, look: FolderLook, state: SessionState | None
    ) -> RepairFacts:
        expected = await self._expected_identity(session_id)
        owner = await self._owner_of(look, expected, session_id)
        owner_holds_ours = owner_managed = False
        if owner is not None:
            owner_folder = await asyncio.to_thread(self.snapshots.session_folder, owner)
            owner_look = await asyncio.to_thread(inspect_folder, owner_folder)
            owner_holds_ours = (expected is not None and owner_look.registered and owner_look.identity is not None
                                and expected.same_account(owner_look.identity))
            owner_managed = _state(await self._status(owner)) in ACTIVE
        creds = snapshot = None
        damage = finding.damage
        if damage in CREDS_DAMAGE or damage is Damage.FOLDER_REMOVED:
            creds = await asyncio.to_thread(self._newest_creds, session_id, expected)
        if damage in (Damage.FOLDER_REMOVED, Damage.KEYS_MASS_DELETED):
            snapshot = await asyncio.to_thread(history.newest_intact_snapshot, self.snapshots, session_id, expected)
        return RepairFacts(
            session=session_id, finding=finding, look=look, baseline=self._baseline.get(session_id),
            expected=expected, owner=owner, owner_holds_ours=owner_holds_ours, owner_managed=owner_managed,
            creds=creds, snapshot=snapshot, running=state in ACTIVE, managed=state is not None,
        )

    def _newest_creds(self, session_id: str, expected: Identity | None) -> CredsCandidate | None:
        """The newest intact creds of the folder's account: the store's creds history first (the
        creds last saved), then snapshots. A folder never linked takes its newest snapshot's."""
        if expected is None:
            return history.newest_creds(self.snapshots, session_id, None)
        found = self.snapshots.newest_intact_creds(session_id, expected)
        return CredsCandidate(found[0], found[1]) if found is not None else None

    async def _handle(
        self, plan: RepairPlan, detected_at: float, expected: Identity | None, folder: Path
    ) -> Incident | None:
        """Execute a new incident's plan, or quietly repeat it for the incident it continues: an
        open one (not repaired yet), or one repaired within `monitor_mass_delete_window` whose
        damage comes back (a script still deleting, a writer that keeps truncating)."""
        current = self._open.get(plan.session)
        recent = self._recent.get(plan.session)
        if current is None and recent is not None and time.monotonic() < recent[1]:
            current = recent[0]
        if current is not None and current.signature == plan.signature:
            if plan.changes_files:
                was_open = not current.incident.restored
                await self.executor.apply(plan, current.incident, expected=expected)
                if current.incident.restored:
                    log.warning("session %s: %s again (incident %s); repaired again", plan.session,
                                plan.damage.value, current.incident.id)
                    self._remember_repair(current)
                    await self._rebase(plan, folder)
                    if was_open:
                        await self._close(current, f"repaired on a later attempt ({plan.action.value})")
            return None
        incident = await self.executor.execute(plan, detected_at=detected_at, expected=expected)
        self.incidents.append(incident)
        entry = _OpenIncident(incident, plan, set(plan.sessions))
        if incident.restored:
            self._remember_repair(entry)
            await self._rebase(plan, folder)
        else:
            for sid in plan.sessions:
                self._open[sid] = entry
        return incident

    async def _rebase(self, plan: RepairPlan, folder: Path) -> None:
        """The baseline after a repair: the folder as it is now. After key files were put back,
        every key file the folder had before the deletion counts too: a deletion still going on
        may have taken more (or some put back) meanwhile, and those are its continuation."""
        after = await asyncio.to_thread(inspect_folder, folder)
        keys = after.key_files
        previous = self._baseline.get(plan.session)
        if plan.action is RepairAction.PUT_BACK_KEYS:
            keys = keys | plan.keys | (previous.key_files if previous is not None else frozenset())
        self._baseline[plan.session] = dataclasses.replace(after, key_files=keys)

    def _remember_repair(self, entry: _OpenIncident) -> None:
        until = time.monotonic() + self.settings.monitor_mass_delete_window
        for sid in entry.incident.sessions or [entry.incident.session]:
            self._recent[sid] = (entry, until)

    async def _close(self, entry: _OpenIncident, how: str) -> None:
        """The monitor is done with an open incident: the desk says it is over (once, as `info`)
        when nobody else (a session still suspended by it) holds it."""
        for sid in list(entry.pending):
            if self._open.get(sid) is entry:
                del self._open[sid]
        entry.pending.clear()
        self.executor.resolved(entry.plan, how)

    async def _healthy(self, session_id: str, look: FolderLook) -> None:
        """A folder without damage: resolve its open incident, learn its account, snapshot it."""
        entry = self._open.get(session_id)
        if entry is not None and look.exists and look.unreadable is None:
            entry.pending.discard(session_id)
            del self._open[session_id]
            if not entry.pending:
                await self._close(entry, "the folder is readable and holds its own account again")
        if not look.healthy:
            return
        if look.registered and look.identity is not None:
            expected = await self._expected_identity(session_id)
            if expected is None or expected != look.identity:
                log.info("session %s holds account %s", session_id, look.identity.describe())
                await self._record(session_id, look.identity)
            elif session_id in self._unrecorded:
                await self._record(session_id, look.identity)
        self._remember_healthy(session_id, look)
        await self._maybe_snapshot(session_id, look)

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

    # ----- snapshots --------------------------------------------------------------------
    def _newest(self, session_id: str) -> NewestSnapshot | None:
        for manifest in history.newest_first(self.snapshots, session_id):
            if manifest.reason == history.PRE_RESTORE or not any(f.name == CREDS_FILE for f in manifest.files):
                continue
            found = history.snapshot_creds(self.snapshots, manifest)
            identity = identity_of(found[1]) if found is not None else None
            sha = next(f.sha256 for f in manifest.files if f.name == CREDS_FILE)
            prekeys = uploaded_prekeys(found[1]) if found is not None else 0
            return NewestSnapshot(identity, sha, manifest.created_at, prekeys)
        return None

    async def _maybe_snapshot(self, session_id: str, look: FolderLook) -> None:
        """Snapshot a healthy folder when snapshot_policy says so, unless it is backing off."""
        memory = self._memory.get(session_id)
        first_look = memory is None
        memory = self._memory.setdefault(session_id, SessionMemory())
        now = time.monotonic()
        remember(memory, look, now)
        newest = await asyncio.to_thread(self._newest, session_id)
        if first_look and newest is not None and newest.identity == look.identity and (
            newest.creds_sha256 == look.creds_sha256
        ):
            memory.settled_for = look.identity  # after a restart: a snapshot already holds these very creds
        reason = snapshot_reason(
            look, newest, memory, now=now, wall_now=time.time(),
            settle_seconds=self.settings.monitor_settle_seconds, min_interval=self.settings.snapshot_min_interval,
        )
        if session_id in self._in_storage_incident:
            reason = reason or "monitor-retry"  # the monitor holds the storage incident until a snapshot works
            await self._retry_soon_if_writable(session_id)
        due = settle_due(memory, look, self.settings.monitor_settle_seconds)
        if reason is not None and await self._snapshot(session_id, reason) is not None and due is not None and (
            now >= due
        ):
            memory.settled_for = look.identity
            due = None
        if due is not None:
            self._kick_at(session_id, due)

    async def _snapshot(self, session_id: str, reason: str) -> SnapshotManifest | None:
        """Take one snapshot, respecting (and updating) the session's backoff."""
        backoff = self._backoff.get(session_id)
        if backoff is None:
            backoff = self._backoff[session_id] = SnapshotBackoff.every(max(1.0, self.settings.monitor_scan_interval))
        now = time.monotonic()
        if not backoff.allowed(now):
            return None
        try:
            manifest = await asyncio.to_thread(self.snapshots.create, session_id, reason)
        except (BridgeError, OSError) as exc:
            delay = backoff.failed(now)
            if self._storage_incident(session_id, exc, delay):
                pass
            elif backoff.failures == 1:
                log.warning("snapshot of %s (%s) failed: %s; backing off", session_id, reason, exc)
                self.bus.alert(session_id, "snapshot_failed", "warning",
                               f"session {session_id}: snapshot failed: {exc}. Retrying with backoff "
                               f"(next in {delay:.0f} s); the folder itself is untouched")
            else:
                log.info("snapshot of %s failed again (%s); next attempt in %.0f s", session_id, exc, delay)
            return None
        self._never_linked.discard(session_id)
        ended = backoff.succeeded()
        self._probed.discard(session_id)
        if session_id in self._in_storage_incident:
            self._in_storage_incident.discard(session_id)
            self.desk.leave(storage_key(), monitor_holder(session_id), f"snapshots of {session_id} work again")
        elif ended:
            self.bus.alert(session_id, "snapshot_failed", "info",
                           f"session {session_id}: snapshots work again ({manifest.id})", resolved=True)
        self._announce(manifest)
        return manifest

    async def _retry_soon_if_writable(self, session_id: str) -> None:
        """A cheap probe of the root (`probe_write`) while the backoff holds the next snapshot back:
        once it takes a write again, the snapshot is tried now, so the storage incident ends when
        storage is back, not minutes later. Once per failing episode: a snapshot that still fails
        after a probe worked (a root with a few free bytes) waits for the backoff, so the probe
        never turns into a retry per scan."""
        backoff = self._backoff.get(session_id)
        if backoff is None or session_id in self._probed or backoff.allowed(time.monotonic()):
            return
        self._probed.add(session_id)
        try:
            await asyncio.to_thread(probe_write, self.settings.bridge_dir)
        except BridgeError:
            self._probed.discard(session_id)  # still refused: probe again at the next look
            return
        backoff.retry_at = 0.0

    def _storage_incident(self, session_id: str, exc: BaseException, delay: float) -> bool:
        """A snapshot the auth root refused (full, read-only, permission denied, I/O error) is the
        storage incident, not a warning of its own. True when it is.

        If someone else (a suspended session, the service) holds the incident, the monitor only
        joins its record: they end it when they work again. Otherwise the monitor opens it (a root
        gone read-only under idle sessions) and holds it until one of its snapshots works."""
        if not isinstance(exc, StoreError) or not durable.is_storage_fault(exc):
            return False
        key = storage_key()
        holder = monitor_holder(session_id)
        message = (f"storage fault ({exc.code}): a snapshot of session {session_id} failed: {exc} Sessions that "
                   "cannot write stop using WhatsApp (suspended) and resume by themselves once storage works again.")
        held_by_others = self.desk.holders(key) - {holder}
        if self.desk.get(key) is not None and held_by_others:
            record = Incident(id="", session=session_id, kind="storage_fault", detail=message,
                              detected_at=time.time(), sessions=[session_id])
            self.desk.open(key, record, (), alert=None)
            log.info("snapshot of %s failed on a storage fault (%s): part of the open storage incident; next "
                     "attempt in %.0f s", session_id, exc.code, delay)
            return True
        if session_id not in self._in_storage_incident:
            log.warning("snapshot of %s failed on a storage fault: %s; next attempt in %.0f s", session_id, exc, delay)
            self._in_storage_incident.add(session_id)
        self.desk.join(key, session_id, "storage_fault", message, holder=holder, code=exc.code)
        return True

    def snapshot_failures(self, session_id: str) -> int:
        """Failed snapshot attempts of the session's current failing episode (0 when they work)."""
        backoff = self._backoff.get(session_id)
        return backoff.failures if backoff is not None else 0

    def _announce(self, manifest: SnapshotManifest) -> None:
        data = {"id": manifest.id, "reason": manifest.reason, "registered": manifest.registered}
        self.bus.publish(manifest.session, EventKind.SNAPSHOT, data)

    async def snapshot_all(self, reason: str = "scheduled") -> list[SnapshotManifest]:
        """Snapshot every healthy folder now (the `Settings.snapshot_interval` schedule)."""
        taken: list[SnapshotManifest] = []
        try:
            sids = await asyncio.to_thread(self.session_ids)
        except (OSError, BridgeError) as exc:
            self._once("root", f"cannot list the session folders of {self.root}: {exc}")
            return taken
        for sid in sorted(sids):
            async with self._locks.setdefault(sid, asyncio.Lock()):
                folder = await asyncio.to_thread(self.snapshots.session_folder, sid)
                look = await asyncio.to_thread(inspect_folder, folder)
                if not look.healthy or sid in self._open:
                    continue
                manifest = await self._snapshot(sid, reason)
                if manifest is not None:
                    taken.append(manifest)
        return taken
