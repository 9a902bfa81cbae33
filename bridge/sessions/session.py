"""`Session`: one tenant's state machine bound to a runtime, an auth store, timers and the bus.

Each session is an actor: every event (API calls, runtime events, timer ticks, process state
changes) goes through one queue and is handled one at a time by `transition()` from state.py,
whose actions are carried out here in order. Runtime callbacks only enqueue, so the IPC reader is
never blocked by a session (a session awaiting the runtime's answer to `start` while the same
runtime sends it an event would otherwise deadlock).

What may go wrong and what happens then:
- the session lock is held by another bridge instance: the session goes `failed` with a critical
  alert (two processes writing one creds.json is how creds get torn);
- the runtime cannot be started or does not answer `start`: treated as a transient close
  (backoff and retry);
- storage refuses a write or read (full, read-only, permission, I/O): the session is `suspended`
  (no socket, its held-back writes kept in memory), the bridge's storage incident gets one
  critical alert, and a probe with backoff resumes the session when storage works again;
- a snapshot fails: a critical alert (for a storage fault: the storage incident's one alert), and
  the transition still completes (nothing is deleted on any path, so a missing snapshot never
  costs data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from bridge import metrics
from bridge.config import Settings
from bridge.delivery import Backoff
from bridge.errors import BridgeError, SessionStateError, StoreError
from bridge.events import EventBus, Severity
from bridge.ipc import protocol as p
from bridge.messages.desk import MESSAGING_EVENTS
from bridge.runtime.process import ProcessState
from bridge.sessions import state as st
from bridge.sessions.auth import SessionAuth
from bridge.sessions.incident_desk import IncidentDesk, identity_key, storage_key
from bridge.sessions.reconnect import DisconnectReason
from bridge.sessions.registry import Registry, SessionRecord
from bridge.sessions.storage_probe import probe_write
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.durable import is_storage_fault
from bridge.store.identity import IdentityBook
from bridge.store.journal import AuthBackend
from bridge.store.layout import CREDS_FILE
from bridge.store.lock import SessionLock, SessionLockedError

if TYPE_CHECKING:
    from bridge.sessions.runtimes import RuntimePool
    from bridge.store.snapshots import Snapshots

log = logging.getLogger(__name__)

FIRST_QR_TTL = 60.0
NEXT_QR_TTL = 20.0
"""Baileys 7 shows the first QR ref for 60 s and each later one for 20 s (socket.js qrTimeout)."""


class QrInfo(msgspec.Struct, frozen=True):
    """The session's current login QR and when Baileys will replace it."""

    qr: str
    expires_at: float


class SessionInfo(msgspec.Struct, frozen=True):
    """What the API and CLI show about a session (a copy; it never changes under the reader)."""

    id: str
    state: str
    reason: str
    since: float
    login: str
    phone: str | None
    me: str | None
    last_disconnect_reason: str | None
    restarts: int
    desired_running: bool
    archived: bool
    folder: str
    runtime: str | None
    pid: int | None
    qr_expires_at: float | None
    pairing_code: str | None
    incident: str | None = None


_Item = tuple[st.SessionEvent, "asyncio.Future[st.Transition] | None"]


STORAGE_INCIDENT = storage_key()
"""The `IncidentDesk` key of the bridge's storage incident (`incident_desk.storage_key`)."""


@dataclass(frozen=True)
class SessionServices:
    """What every session of one bridge shares."""

    settings: Settings
    bus: EventBus
    snapshots: Snapshots
    registry: Registry
    runtimes: RuntimePool
    desk: IncidentDesk
    identities: IdentityBook
    auth_backends: Callable[[str], AuthBackend] | None = None
    """Where a session's auth bytes go (cluster mode: PostgreSQL with the lease's epoch, which also
    keeps the creds history); None: the session's journal under the auth root."""


class Session:
    """One tenant. Create through `SessionManager`; all public coroutines are safe to call
    concurrently (they go through the session's queue)."""

    def __init__(self, record: SessionRecord, *, folder: Path, services: SessionServices) -> None:
        self.id = record.id
        self.record = record
        self.folder = folder
        self.settings = services.settings
        self.bus = services.bus
        self.snapshots = services.snapshots
        self.registry = services.registry
        self.runtimes = services.runtimes
        self.desk = services.desk
        self.identities = services.identities
        self._auth_backends = services.auth_backends
        settings = services.settings
        initial = st.SessionState.STOPPED
        if record.last_state in (st.SessionState.LOGGED_OUT, st.SessionState.BANNED):
            initial = st.SessionState(record.last_state)
        self.state = initial
        self.reason = record.last_reason if initial is not st.SessionState.STOPPED else ""
        self.since = time.time()
        self.qr: QrInfo | None = None
        self.pairing_code: str | None = None
        self.me: str | None = None
        self.last_disconnect: str | None = None
        self.on_messaging: Callable[[str, str, msgspec.Struct], None] | None = None
        """Where messaging events go (`MessageDesk.on_runtime_event`; set by the manager)."""
        self.backoff = Backoff(settings.reconnect_initial, settings.reconnect_max)
        self.attempt = 0
        """Reconnect (or storage probe) attempts since the session was last open (or started)."""
        self.incident: str | None = None
        """The incident the session's current state belongs to (carried by its `state` events)."""
        self._incident_key: str | None = None
        self._quiet = False  # True: someone else already alerted for `incident`
        self._qr_count = 0
        self._timer: asyncio.Task[None] | None = None
        self._lock: SessionLock | None = None
        self._auth: SessionAuth | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._depth = 0  # > 0 while a transition's actions are running
        self._waiters: list[tuple[frozenset[st.SessionState], asyncio.Future[st.SessionState]]] = []
        metrics.SESSIONS_BY_STATE.labels(state=self.state.value).inc()

    # ----- public ---------------------------------------------------------------------------
    def info(self) -> SessionInfo:
        slot = self.runtimes.slot_of(self.id)
        return SessionInfo(
            id=self.id,
            state=self.state.value,
            reason=self.reason,
            since=self.since,
            login=self.record.login,
            phone=self.record.phone,
            me=self.me,
            last_disconnect_reason=self.last_disconnect,
            restarts=slot.restarts if slot is not None else 0,
            desired_running=self.record.desired_running,
            archived=self.record.archived,
            folder=str(self.folder),
            runtime=slot.name if slot is not None else None,
            pid=slot.pid if slot is not None else None,
            qr_expires_at=self.qr.expires_at if self.qr else None,
            pairing_code=self.pairing_code,
            incident=self.incident,
        )

    async def dispatch(self, event: st.SessionEvent) -> st.Transition:
        """Handle `event` after everything queued before it; returns its transition."""
        future: asyncio.Future[st.Transition] = asyncio.get_running_loop().create_future()
        self._ensure_worker()
        self._queue.put_nowait((event, future))
        return await future

    def post(self, event: st.SessionEvent) -> None:
        """Queue `event` without waiting (runtime callbacks and timers)."""
        self._ensure_worker()
        self._queue.put_nowait((event, None))

    async def wait_for(self, states: set[st.SessionState], timeout: float) -> st.SessionState:  # noqa: ASYNC109
        """Wait until the session is in one of `states` and the actions of the transition into it
        are done (raises TimeoutError)."""
        if self.state in states and self._depth == 0:
            return self.state
        future: asyncio.Future[st.SessionState] = asyncio.get_running_loop().create_future()
        waiter = (frozenset(states), future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.remove(waiter)

    async def call(self, cmd: str, args: dict[str, Any], timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send a command to this session in its runtime (SessionStateError if it has none)."""
        return await self.runtimes.call(self.id, cmd, args, timeout or self.settings.ipc_request_timeout)

    async def close(self) -> None:
        """Stop the worker and timer (after `Shutdown`/`Stop` were dispatched)."""
        if self._auth is not None and self._auth.holds_writes:
            log.error("session %s: %d write(s) held back by the storage fault are lost with this shutdown; the "
                      "session restarts from its folder as it is on disk", self.id, self._auth.held_writes)
        self._cancel_timer()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        await self._close_auth()
        self._release_lock()

    # ----- runtime callbacks (the `RuntimeListener` of runtimes.py) ----------------------------
    def on_runtime_event(self, name: str, data: msgspec.Struct) -> None:
        """Translate one runtime event into session events (never blocks)."""
        if isinstance(data, p.ConnectionUpdateData):
            if data.connection == "connecting":
                self.post(st.Connecting())
            elif data.connection == "open":
                if data.me is not None:
                    self.me = data.me.id
                self.post(st.Opened())
            elif data.connection == "close":
                d = data.disconnect
                code = d.status_code if d is not None else None
                message = d.message if d is not None else ""
                self.last_disconnect = f"{code} {d.reason or ''}: {message}".strip() if d else "closed"
                if code == DisconnectReason.RESTART_REQUIRED and (d is None or not d.handled_by_runtime):
                    code = None  # the runtime could not restart by itself: retry with backoff
                self.post(st.Closed(code, message))
        elif isinstance(data, p.QrData):
            ttl = FIRST_QR_TTL if self._qr_count == 0 else NEXT_QR_TTL
            self._qr_count += 1
            self.post(st.QrIssued(data.qr, time.time() + ttl))
        elif isinstance(data, p.PairingCodeData):
            self._publish_pairing_code(data.code)
            self.post(st.PairingCodeIssued(data.code))
        elif name in MESSAGING_EVENTS and self.on_messaging is not None:
            self.on_messaging(self.id, name, data)

    def runtime_exited(self, detail: str) -> None:
        self.post(st.RuntimeExited(detail))

    def runtime_restarted(self) -> None:
        self.post(st.RuntimeRestarted())

    def runtime_fatal(self, detail: str) -> None:
        self.post(st.RuntimeFatal(detail))

    def _publish_pairing_code(self, code: str) -> None:
        if code != self.pairing_code:
            self.pairing_code = code
            self.bus.publish(self.id, "pairing_code", {"code": code})

    # ----- the actor -----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"session-{self.id}")

    async def _run(self) -> None:
        while True:
            event, future = await self._queue.get()
            try:
                result = await self._handle(event)
            except BridgeError as exc:  # a refused request: the caller gets the error
                log.error("session %s: %r refused: %s", self.id, event, exc)
                if future is not None and not future.done():
                    future.set_exception(exc)
                continue
            except Exception as exc:  # never let one bad event kill the session's actor
                log.exception("session %s: handling %r failed", self.id, event)
                if future is not None and not future.done():
                    future.set_exception(exc)
                continue
            if future is not None and not future.done():
                future.set_result(result)

    async def _handle(self, event: st.SessionEvent) -> st.Transition:
        self._depth += 1
        try:
            return await self._transition(event)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._wake(self.state)

    async def _transition(self, event: st.SessionEvent) -> st.Transition:
        result = st.transition(self.state, event)
        actions = result.actions
        unrecorded: BridgeError | None = None
        if actions and isinstance(actions[0], st.SetDesired):
            try:
                await self._set_desired(actions[0].running)
            except BridgeError as exc:
                if actions[0].running:
                    raise  # a start that cannot be recorded does not happen
                unrecorded = exc  # a stop always happens; the caller learns it was not recorded
            actions = actions[1:]
        for action in actions:
            # Incident bookkeeping takes effect with the state change: its event carries the id.
            if isinstance(action, (st.FollowIncident, st.ReportStorageFault)):
                await self._do(action)
        if result.changed:
            await self._set_state(result.state, result.reason)
        for action in actions:
            if isinstance(action, (st.FollowIncident, st.ReportStorageFault)):
                continue
            follow = await self._do(action)
            if follow:
                # The action failed; its event decides what happens next (see SessionAction).
                for extra in follow:
                    await self._handle(extra)
                break
        if result.changed:
            # Waiters see the state once its actions are done, even if the next event moves on.
            self._wake(result.state)
        if unrecorded is not None:
            raise unrecorded
        return result

    def _wake(self, state: st.SessionState) -> None:
        for states, future in self._waiters:
            if state in states and not future.done():
                future.set_result(state)

    async def _set_state(self, new: st.SessionState, reason: str) -> None:
        previous = self.state
        self.state = new
        self.reason = reason
        self.since = time.time()
        if new is not previous:
            metrics.SESSIONS_BY_STATE.labels(state=previous.value).dec()
            metrics.SESSIONS_BY_STATE.labels(state=new.value).inc()
        self.bus.publish(self.id, "state", {"state": new.value, "previous": previous.value, "reason": reason,
                                            "incident": self.incident})
        log.info("session %s: %s -> %s (%s)", self.id, previous.value, new.value, reason)
        await self._record(last_state=new.value, last_reason=reason)

    async def _record(self, **fields: Any) -> None:
        """Write registry fields off the event loop (the registry fsyncs). For bookkeeping that
        follows what already happened (a state WhatsApp imposed): a failure is logged, the
        registry stays as it was, and the session goes on."""
        try:
            await self._set_record(**fields)
        except BridgeError as exc:
            log.error("session %s: registry update failed: %s", self.id, exc)

    async def _set_record(self, **fields: Any) -> None:
        self.record = await asyncio.to_thread(self.registry.update, self.id, **fields)

    async def _set_desired(self, running: bool) -> None:
        """Record the operator's desire; raises (`StoreError`) with nothing changed."""
        if self.record.desired_running != running:
            await self._set_record(desired_running=running)

    async def _link_new_device(self) -> None:
        """See `st.LinkNewDevice`: a registered snapshot first, then "no creds" on the next load;
        the new identity is expected (and recorded) from then until the session is open."""
        if await asyncio.to_thread(self.snapshots.latest, self.id, registered=True) is None:
            await self._snapshot("before_relink")
        auth = self._session_auth()
        auth.relink = True
        auth.new_identity = True

    async def _restore_vanished_creds(self) -> list[st.SessionEvent]:
        """creds.json vanished while the session was stopped (an `rm -rf`, a careless script).
        Starting now would let Baileys make a fresh identity and ask for a new QR over a linked
        account, the exact failure this project exists to prevent: restore the newest good
        registered snapshot first. A session that was never linked simply starts fresh."""
        if await asyncio.to_thread((self.folder / CREDS_FILE).exists):
            return []
        manifest = await asyncio.to_thread(self.snapshots.latest_good, self.id, registered=True)
        if manifest is None:
            return []
        try:
            await asyncio.to_thread(self.snapshots.restore, self.id, manifest.id)
        except BridgeError as exc:
            if is_storage_fault(exc):
                return [st.StorageFault(exc.code, f"restoring the missing creds.json from snapshot {manifest.id} "
                                                  f"failed: {exc}")]
            return [st.StartRefused(
                f"creds.json is missing and restoring snapshot {manifest.id} failed: {exc}. Restore it with "
                "`python -m bridge restore` before starting", kind="creds_restore_failed")]
        self.bus.alert(self.id, "creds_missing_restored", "critical",
                       f"session {self.id}: creds.json was missing at start; restored snapshot {manifest.id} "
                       "instead of linking a new device. Find out what removed it.")
        return []

    async def _do(self, action: st.SessionAction) -> list[st.SessionEvent]:
        match action:
            case st.SendStart():
                return await self._send_start()
            case st.SendStop():
                await self._send_stop()
            case st.SendLogout():
                try:
                    await self.call("logout", {}, self.settings.stop_grace + self.settings.ipc_request_timeout)
                except BridgeError as exc:
                    log.warning("session %s: Baileys logout failed (%s); marked logged out anyway", self.id, exc)
            case st.ScheduleReconnect():
                self.attempt += 1
                self._arm_timer(self.backoff.delay(self.attempt), st.ReconnectDue())
            case st.CancelReconnect():
                self._cancel_timer()
            case st.ResetBackoff():
                self.attempt = 0
            case st.TakeSnapshot(reason=reason):
                await self._snapshot(reason)
            case st.RaiseAlert(kind=kind, severity=severity, message=message, incident_key=key):
                self._raise_alert(kind, severity, f"session {self.id}: {message}", key)
            case st.ClearQr():
                self.qr = None
            case st.KeepQr(qr=qr, expires_at=expires_at):
                self.qr = QrInfo(qr, expires_at)
                self.bus.publish(self.id, "qr", {"qr": qr, "expires_at": expires_at})
            case st.SetDesired(running=running):
                if self.record.desired_running != running:
                    await self._record(desired_running=running)
            case st.ResetLogin():
                self._qr_count = 0
                self.pairing_code = None
            case st.LinkNewDevice():
                await self._link_new_device()
            case st.RestoreVanishedCreds():
                return await self._restore_vanished_creds()
            case st.FollowIncident(incident=incident):
                self._leave_incident()
                self.incident, self._quiet = incident, incident is not None
            case st.ClearIncident():
                self._leave_incident()
            case st.RecordIdentity():
                await self._record_identity()
            case st.ReportStorageFault(code=code, detail=detail):
                self._report_storage_fault(code, detail)
            case st.ScheduleProbe():
                self.attempt += 1
                self._arm_timer(self.backoff.delay(self.attempt), st.ProbeDue())
            case st.FlushHeldWrites():
                return await self._flush_held_writes()
            case st.DropHeldWrites():
                if self._auth is not None and (dropped := self._auth.drop_held()):
                    log.warning("session %s: dropped %d held-back write(s): a restore replaced the folder",
                                self.id, dropped)
            case st.ProbeStorage():
                return await self._probe_storage()
        return []

    async def _snapshot(self, reason: str) -> None:
        try:
            manifest = await asyncio.to_thread(self.snapshots.create, self.id, reason)
        except BridgeError as exc:
            if is_storage_fault(exc):
                self._report_storage_fault(exc.code, f"snapshot ({reason}) failed: {exc}")
                return
            self.bus.alert(self.id, "snapshot_failed", "critical",
                           f"session {self.id}: snapshot ({reason}) failed: {exc}. No file was deleted.")
            return
        self.bus.publish(self.id, "snapshot", {"id": manifest.id, "reason": reason, "registered": manifest.registered})

    def _session_auth(self) -> SessionAuth:
        if self._auth is None:
            store = AuthStore(
                self.folder,
                session_id=self.id,
                bridge_dir=self.settings.bridge_dir,
                before_creds_downgrade=lambda reason: self.snapshots.create(self.id, reason),
                backend=self._auth_backends(self.id) if self._auth_backends is not None else None,
                keep_creds_history=self._auth_backends is None,
            )
            self._auth = SessionAuth(
                AsyncAuthStore(store), session_id=self.id, folder=self.folder, snapshots=self.snapshots,
                identities=self.identities, on_fault=self._on_storage_fault,
            )
        return self._auth

    # ----- incidents and storage faults -------------------------------------------------------
    def _on_storage_fault(self, exc: StoreError) -> None:
        """From the auth wrapper, inside a runtime request: queue, never block."""
        self.post(st.StorageFault(exc.code, str(exc)))

    def _report_storage_fault(self, code: str, detail: str) -> None:
        message = (
            f"storage fault ({code}) at session {self.id}: {detail} Sessions that cannot write stop using "
            "WhatsApp (state suspended, their unwritten changes held in memory) and resume by themselves "
            "once storage works again; a bridge restart before that loses the held changes."
        )
        incident = self.desk.join(STORAGE_INCIDENT, self.id, "storage_fault", message, code=code)
        if self._incident_key != STORAGE_INCIDENT:
            self._leave_incident()
        self.incident, self._incident_key, self._quiet = incident, STORAGE_INCIDENT, False

    def _raise_alert(self, kind: str, severity: Severity, message: str, key: str | None) -> None:
        if self._quiet:
            log.warning("%s (%s; part of incident %s, already alerted)", message, kind, self.incident)
        elif key is not None and severity == "critical":
            incident = self.desk.join(key, self.id, kind, message)
            if self._incident_key != key:
                self._leave_incident()
            self.incident, self._incident_key = incident, key
        else:
            self.bus.alert(self.id, kind, severity, message, incident=self.incident)

    async def _record_identity(self) -> None:
        try:
            await self._session_auth().record_identity()
        except StoreError as exc:
            # Not fatal for the open session; the next start checks against the old record (or
            # none), and a re-link keeps asking to be recorded until it is.
            log.error("session %s: could not record its identity: %s", self.id, exc)

    def _leave_incident(self) -> None:
        if self._incident_key is not None:
            self.desk.leave(self._incident_key, self.id)
        self.incident, self._incident_key, self._quiet = None, None, False

    async def _flush_held_writes(self) -> list[st.SessionEvent]:
        """See `st.FlushHeldWrites`."""
        auth = self._auth
        if auth is None or (auth.fault is None and not auth.holds_writes):
            return []
        try:
            await auth.flush()
        except StoreError as exc:
            if is_storage_fault(exc):
                return [st.StorageFault(exc.code, str(exc))]
            dropped = auth.drop_held()
            log.error("session %s: %d held-back write(s) were refused (%s) and dropped", self.id, dropped, exc)
        return []

    async def _probe_storage(self) -> list[st.SessionEvent]:
        """See `st.ProbeStorage`: the held writes (into the folder), a write under the root's
        `.bridge/`, and a read of creds."""
        failed = await self._flush_held_writes()
        if failed:
            return failed
        try:
            await asyncio.to_thread(probe_write, self.settings.bridge_dir)
            await self._session_auth().store.load_creds()
        except StoreError as exc:
            if is_storage_fault(exc):
                return [st.StorageFault(exc.code, str(exc))]
            log.warning("session %s: storage probe: %s (starting anyway; the start will say more)", self.id, exc)
        return [st.StorageRecovered()]

    async def _send_start(self) -> list[st.SessionEvent]:
        self._qr_count = 0  # a new socket shows its first QR for 60 s again
        try:
            if self._lock is None:
                lock = SessionLock(self.settings.bridge_dir, self.id)
                lock.acquire(0.0)
                self._lock = lock
            await self.runtimes.attach(self, self._session_auth())
            args = p.StartArgs(
                wa_url=self.settings.wa_url,
                trust_root=self.settings.wa_trust_root,
                login="pairing_code" if self.record.login == "pairing_code" else "qr",
                phone=self.record.phone or "",
                log_level=_node_level(self.settings.node_log_level),
                connect_timeout_ms=round(self.settings.connect_timeout * 1000),
                send_ack_timeout_ms=round(self.settings.send_ack_timeout * 1000),
            )
            await self.call("start", msgspec.to_builtins(args), self.settings.ipc_request_timeout * 2)
        except SessionLockedError as exc:
            self._release_lock()
            return [st.StartRefused(f"{exc}; nothing was changed on disk")]
        except StoreError as exc:
            if not is_storage_fault(exc):
                raise
            self._release_lock()
            return [st.StorageFault(exc.code, str(exc))]
        except BridgeError as exc:
            refused = self._auth.refusal if self._auth is not None else None
            if refused is not None:
                return [self._refused_start(refused)]
            slot = self.runtimes.slot_of(self.id)
            if slot is not None and slot.process.state is ProcessState.FATAL:
                return [st.RuntimeFatal(str(exc))]
            log.warning("session %s: start failed: %s", self.id, exc)
            self.last_disconnect = f"start failed: {exc}"
            return [st.Closed(None, f"start failed: {exc}")]
        return []

    def _refused_start(self, refused: StoreError) -> st.StartRefused:
        """The creds the runtime asked for were refused (identity): fail, never retry."""
        mismatch = self._auth.mismatch if self._auth is not None else None
        key = None
        if mismatch is not None and mismatch.owner is not None:
            key = identity_key((self.id, mismatch.owner))  # swapped: one incident, whoever sees it first
        return st.StartRefused(str(refused), kind=refused.code, incident_key=key)

    async def _send_stop(self) -> None:
        try:
            await self.runtimes.detach(self)
        except BridgeError as exc:
            log.warning("session %s: stopping its runtime failed: %s", self.id, exc)
        await self._close_auth()
        self._release_lock()

    async def _close_auth(self) -> None:
        """Checkpoint and release the session's journal before its lock, so the folder alone is
        exact for whoever takes it next (a legacy process, a snapshot, the CLI); the next start
        opens (and replays) it again. Writes held back by a storage fault stay held instead."""
        auth = self._auth
        if auth is None or auth.holds_writes:
            return
        self._auth = None
        try:
            await auth.store.close()
        except StoreError as exc:
            log.error("session %s: checkpointing its journal at stop failed (%s); the next start replays it",
                      self.id, exc)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _arm_timer(self, delay: float, due: st.SessionEvent) -> None:
        self._cancel_timer()
        self.bus.publish(self.id, "reconnect", {"delay": delay, "attempt": self.attempt,
                                                "probe": isinstance(due, st.ProbeDue)})

        async def fire() -> None:
            await asyncio.sleep(delay)
            self._timer = None
            self.post(due)

        self._timer = asyncio.get_running_loop().create_task(fire(), name=f"reconnect-{self.id}")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def require_open(self) -> None:
        if self.state is not st.SessionState.OPEN:
            raise SessionStateError(
                f"session {self.id} is {self.state.value}, not open; start it and wait for it to be open"
            )


_NODE_LEVELS = {"fatal", "error", "warn", "info", "debug", "trace", "silent"}


def _node_level(level: str) -> Any:
    value = level.lower()
    return value if value in _NODE_LEVELS else "warn"

