"""`SessionManager`: every tenant of this bridge, the API the HTTP layer and the CLI use.

It owns the registry (which sessions exist and should run), the runtime pool, and one `Session`
actor per registered session. Operations validate input up front (session id, phone, recipient)
and raise `SessionError`s whose messages say what to do; state-dependent refusals are
`SessionStateError` (HTTP 409).

Sessions persist across bridge restarts: `start_all()` starts every registered, non-archived
session whose desired state is running; `shutdown()` stops the runtimes without changing that
desire, so the next `python -m bridge` brings the same tenants back.

Cluster mode (docs/cluster.md) changes four things through the constructor, nothing else:
`records` keeps the registry in the cluster's table, `auth_backends` puts auth bytes in
PostgreSQL with the lease's epoch, `identities` keeps the identity book there too, and
`hosts_all=False` makes the manager host only the tenants
its node holds a lease on: the coordinator calls `host()` after a claim and `evict()` when the
lease is released or lost. `list()` then shows the other nodes' tenants too, from their records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from bridge.config import Settings
from bridge.errors import SessionError, SessionNotFound, SessionStateError, StoreError
from bridge.events import EventBus
from bridge.ipc.protocol import PairingCodeData
from bridge.media.desk import MediaDesk
from bridge.messages.desk import MessageDesk
from bridge.monitor.incidents import IncidentLog
from bridge.sessions import state as st
from bridge.sessions.incident_desk import IncidentDesk
from bridge.sessions.message_port import ManagerPort
from bridge.sessions.phone import to_jid, validate_phone
from bridge.sessions.ramp import StartRamp
from bridge.sessions.registry import LoginMethod, RecordStore, Registry, SessionRecord
from bridge.sessions.runtimes import RuntimePool
from bridge.sessions.session import QrInfo, Session, SessionInfo, SessionServices
from bridge.store.folders import session_folders
from bridge.store.identity import IdentityBook
from bridge.store.layout import validate_session_id

if TYPE_CHECKING:
    from bridge.store.journal import AuthBackend
    from bridge.store.snapshots import SnapshotManifest, Snapshots

log = logging.getLogger(__name__)

S = st.SessionState
LOGIN_METHODS = ("qr", "pairing_code")


class SentMessage(msgspec.Struct, frozen=True):
    """What `send_text` knows about a message that left.

    `persisted` False: the message went out but the Signal state it advanced could not be
    stored (storage fault); the session is suspended and writes that state when storage is back.
    Never send it again: the contact may have it. `server_ack`: WhatsApp confirmed receipt."""

    id: str
    persisted: bool = True
    server_ack: bool = True


class SessionManager:
    """Many tenants; see the module docstring. Create inside a running event loop."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        snapshots: Snapshots,
        *,
        records: RecordStore | None = None,
        auth_backends: Callable[[str], AuthBackend] | None = None,
        identities: IdentityBook | None = None,
        hosts_all: bool = True,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.snapshots = snapshots
        self.hosts_all = hosts_all
        self.registry = Registry(settings.bridge_dir, records)
        self.runtimes = RuntimePool(settings, bus)
        self.desk = IncidentDesk(bus, IncidentLog(settings.bridge_dir))
        self._services = SessionServices(
            settings, bus, snapshots, self.registry, self.runtimes, self.desk,
            identities if identities is not None else IdentityBook(settings.bridge_dir), auth_backends,
        )
        self.messages = MessageDesk(bus, ManagerPort(self._messaging_session, settings, self.runtimes))
        self.media = MediaDesk(settings, self.messages)
        self._sessions: dict[str, Session] = {}
        self._leaving: dict[str, Session] = {}
        """Sessions being evicted: no longer hosted for the API, still running until their runtime
        is closed, so a message their runtime forwards meanwhile is stored (and only then
        acknowledged) instead of failing with `SessionNotFound`."""
        self.fault: StoreError | None = self.registry.unavailable
        """A storage fault that keeps the bridge from starting its sessions (set by the service
        while its auth root refuses writes; /healthz and /readyz show it)."""
        if self.registry.unavailable is None:
            self._load_sessions()

    def _load_sessions(self) -> None:
        if not self.hosts_all:
            return  # the coordinator hosts what its node holds a lease on
        self._adopt_external()
        for record in self.registry.all():
            if record.id not in self._sessions:
                self._sessions[record.id] = self._make(record)

    async def recover(self) -> None:
        """Read what a storage fault kept unread (the registry) and register existing folders;
        raises the `StoreError` while storage still refuses."""
        if self.registry.unavailable is not None:
            await asyncio.to_thread(self.registry.load)
        await asyncio.to_thread(self._load_sessions)

    async def defer_all(self, fault: StoreError) -> None:
        """Sessions that should run but cannot start now (the auth root refuses writes) stay
        stopped with the fault as their reason, and join the storage incident."""
        wanted = [s for s in self._sessions.values() if s.record.desired_running and not s.record.archived]
        await asyncio.gather(*(s.dispatch(st.StartDeferred(fault.code, str(fault))) for s in wanted))

    # ----- cluster mode: hosting by lease ----------------------------------------------------
    def hosted(self) -> set[str]:
        """The tenants this manager runs sessions for."""
        return set(self._sessions)

    async def host(self, session_id: str) -> bool:
        """Take a tenant whose lease this node now holds: read its newest record, make its session
        and start it when it should run. False: the tenant has no record (yet)."""
        if session_id in self._sessions:
            return True
        await asyncio.to_thread(self.registry.load)
        if not self.registry.exists(session_id):
            return False
        record = self.registry.get(session_id)
        if session_id in self._sessions:  # hosted by a concurrent call meanwhile
            return True
        session = self._make(record)
        self._sessions[session_id] = session
        if record.desired_running and not record.archived:
            await session.dispatch(st.Start())
        return True

    async def evict(self, session_id: str) -> None:
        """Stop hosting a tenant (lease released or lost): its socket closes at once, its writes are
        flushed (refused when the lease is lost) and its desired state stays for the next owner."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        self._leaving[session_id] = session
        try:
            await session.dispatch(st.Shutdown())
        finally:
            try:
                await session.close()
            finally:
                if self._leaving.get(session_id) is session:
                    del self._leaving[session_id]

    # ----- construction --------------------------------------------------------------------
    def _adopt_external(self) -> None:
        """Register auth folders the registry lacks: folders adopted in place elsewhere by
        `python -m bridge adopt` (.bridge/adopted.json), and `AUTH_ROOT/<id>` folders holding a
        creds.json (adopted in the root, or a legacy folder copied there). They are registered
        stopped; nothing in them is touched."""
        try:
            self._adopt_external_folders()
        except (StoreError, OSError) as exc:
            log.warning("could not register every existing auth folder now (%s); the rest are registered at "
                        "the next start", exc)

    def _adopt_external_folders(self) -> None:
        for folder in session_folders(self.settings.auth_root).values():
            if self.registry.exists(folder.session):
                continue
            self.registry.put(SessionRecord(id=folder.session, folder=str(folder.path) if folder.adopted else None))
            log.info("registered existing auth folder %s as session %s", folder.path, folder.session)

    def _folder(self, record: SessionRecord) -> Path:
        return Path(record.folder) if record.folder else self.settings.auth_root / record.id

    def _make(self, record: SessionRecord) -> Session:
        session = Session(record, folder=self._folder(record), services=self._services)
        session.on_messaging = self.messages.on_runtime_event
        return session

    def _session(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id!r}; create it first (POST /api/v1/sessions)")
        return session

    # ----- lifecycle ------------------------------------------------------------------------
    async def create(self, session_id: str, login: str = "qr", phone: str | None = None) -> SessionInfo:
        """Register a session (it does not start). An archived session of that id is revived
        over its kept folder; an existing one is a `SessionStateError`."""
        validate_session_id(session_id)
        if login not in LOGIN_METHODS:
            raise SessionError(f"login must be one of {', '.join(LOGIN_METHODS)}, not {login!r}",
                               code="invalid_login")
        method: LoginMethod = "pairing_code" if login == "pairing_code" else "qr"
        number = validate_phone(phone) if phone else None
        existing = self._sessions.get(session_id)
        if existing is not None and not existing.record.archived:
            raise SessionStateError(f"session {session_id} already exists; use start/stop, or pick another id",
                                    code="session_exists")
        if existing is not None:
            existing.record = self.registry.update(session_id, archived=False, login=method, phone=number)
            return existing.info()
        record = await asyncio.to_thread(self.registry.put, SessionRecord(id=session_id, login=method, phone=number))
        session = self._make(record)
        self._sessions[session_id] = session
        return session.info()

    async def start(self, session_id: str, *, incident: str | None = None) -> SessionInfo:
        """Start the session (no-op when already active). Returns once `start` was sent.

        `incident`: the caller (the monitor) starts it as part of an incident it already alerted
        for; until the session is open again its own trouble raises no second alert, and its
        `state` events carry the id."""
        session = self._session(session_id)
        if session.record.archived:
            raise SessionStateError(f"session {session_id} is archived; create it again to revive it")
        await session.dispatch(st.Start(incident))
        return session.info()

    async def stop(self, session_id: str, *, incident: str | None = None) -> SessionInfo:
        """Stop the session; creds stay as they are and it will not start after a bridge restart.
        `incident`: as for `start` (the monitor stopping it because of an incident it raised)."""
        session = self._session(session_id)
        await session.dispatch(st.Stop(incident))
        return session.info()

    async def logout(self, session_id: str) -> SessionInfo:
        """Unlink the device: snapshot first, then Baileys' logout; every file is kept."""
        session = self._session(session_id)
        result = await session.dispatch(st.Logout())
        if not result.changed:
            raise SessionStateError(
                f"session {session_id} is {session.state.value}; logout needs an open session "
                "(start it and wait for open). Stopping it keeps everything as is."
            )
        return session.info()

    async def archive(self, session_id: str) -> SessionInfo:
        """Stop, snapshot (`archive`) and hide the session; its folder stays on disk."""
        session = self._session(session_id)
        await session.dispatch(st.Stop())
        folder = session.folder
        if folder.is_dir():
            manifest = await asyncio.to_thread(self.snapshots.create, session_id, "archive")
            self.bus.publish(session_id, "snapshot", {"id": manifest.id, "reason": "archive"})
        session.record = self.registry.update(session_id, archived=True, desired_running=False)
        return session.info()

    async def restore(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """Restore a snapshot into the session's folder; only while the session is not active."""
        session = self._session(session_id)
        if session.state in st.ACTIVE:
            raise SessionStateError(f"session {session_id} is {session.state.value}; stop it before restoring")
        manifest = await asyncio.to_thread(self.snapshots.restore, session_id, snapshot_id)
        await session.dispatch(st.Restored())
        return manifest

    async def start_all(self) -> list[str]:
        """Start every session that was running when the bridge last stopped (after a restart, or
        once a storage fault cleared), paced by the start-up ramp (bridge/sessions/ramp.py:
        `BRIDGE_START_CONCURRENCY` at a time, the rest spread over `BRIDGE_START_RAMP` seconds).
        Returns when every one of them started and settled (qr, open, reconnecting, or an end)."""
        wanted = [s for s in self._sessions.values() if s.record.desired_running and not s.record.archived]
        ramp = StartRamp(self.settings.start_concurrency, self.settings.start_ramp,
                         settle_timeout=self.settings.ipc_request_timeout * 2)
        await ramp.start(wanted)
        return [s.id for s in wanted]

    async def shutdown(self) -> None:
        """Stop every runtime, keep every desired state (the next start brings them back)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.dispatch(st.Shutdown()) for s in sessions), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await self.runtimes.close()
        await self.messages.drain()
        await self.media.close()

    # ----- queries --------------------------------------------------------------------------
    def get(self, session_id: str) -> SessionInfo:
        return self._session(session_id).info()

    def _messaging_session(self, session_id: str) -> Session:
        """The session for the message desk (its state and account, read on every send, without
        building a `SessionInfo`), including one still closing after its eviction."""
        leaving = self._leaving.get(session_id)
        return leaving if leaving is not None and session_id not in self._sessions else self._session(session_id)

    def list(self, *, include_archived: bool = False) -> list[SessionInfo]:
        """Every session; in cluster mode those of other nodes too (as their records say)."""
        infos = {sid: s.info() for sid, s in self._sessions.items()}
        if not self.hosts_all:
            for record in self.registry.all():
                if record.id not in infos:
                    infos[record.id] = self._remote_info(record)
        return [info for _, info in sorted(infos.items()) if include_archived or not info.archived]

    def _remote_info(self, record: SessionRecord) -> SessionInfo:
        return SessionInfo(
            id=record.id, state=record.last_state, reason=record.last_reason, since=record.updated_at,
            login=record.login, phone=record.phone, me=None, last_disconnect_reason=None, restarts=0,
            desired_running=record.desired_running, archived=record.archived, folder=str(self._folder(record)),
            runtime=None, pid=None, qr_expires_at=None, pairing_code=None,
        )

    def current_qr(self, session_id: str) -> QrInfo | None:
        """The QR to scan now (None when the session is not waiting for a scan)."""
        return self._session(session_id).qr

    async def wait_for_state(
        self, session_id: str, states: set[S] | set[str], timeout: float = 60.0  # noqa: ASYNC109
    ) -> SessionInfo:
        """Wait until the session is in one of `states` (TimeoutError otherwise)."""
        session = self._session(session_id)
        await session.wait_for({S(x) for x in states}, timeout)
        return session.info()

    # ----- login and messages ---------------------------------------------------------------
    async def request_pairing_code(self, session_id: str, phone: str) -> str:
        """Ask for a pairing code for `phone`; starts the session if needed, returns the code
        (also published as a `pairing_code` event)."""
        number = validate_phone(phone)
        session = self._session(session_id)
        if session.record.login != "pairing_code" or session.record.phone != number:
            session.record = self.registry.update(session_id, login="pairing_code", phone=number)
        if session.state in (S.OPEN, S.CONNECTING) and session.me:
            raise SessionStateError(f"session {session_id} is already linked ({session.me}); no pairing code needed")
        if session.state not in st.ACTIVE:
            await self.start(session_id)
        ready = {S.QR, S.PAIRING, S.OPEN, *st.TERMINAL}
        reached = await session.wait_for(ready, self.settings.ipc_request_timeout * 2)
        if reached is not S.QR and reached is not S.PAIRING:
            raise SessionStateError(f"session {session_id} is {reached.value}; it cannot take a pairing code now")
        result = await session.call("request_pairing_code", {"phone": number})
        code = str(result.get("code", "")) if isinstance(result, dict) else ""
        if not code:
            raise SessionStateError(f"session {session_id}: the runtime returned no pairing code; try again")
        session.on_runtime_event("pairing_code", PairingCodeData(code=code))
        return code

    async def send_text(self, session_id: str, to: str, text: str) -> SentMessage:
        """Send `text` to a phone number or JID. Needs an open session.

        Returns once the message left: normally after the server's ack (`persisted` True). If
        the message went out but its Signal key changes could not be stored (a storage fault
        in the middle of the send), the result says `persisted=False`: the contact may already
        have it, so the caller must not send it again; `server_ack` tells whether WhatsApp
        confirmed it. Errors (nothing was sent, retrying is safe): `SessionStateError`,
        `NodeRuntimeError` (`no_server_ack`, `server_nack`, the runtime's own codes).
        """
        session = self._session(session_id)
        jid = to_jid(to)
        session.require_open()
        result = await session.call("send", {"to": jid, "text": text})
        message_id = str(result.get("id", "")) if isinstance(result, dict) else ""
        if not message_id:
            raise SessionStateError(f"session {session_id}: the runtime did not confirm the message; retry")
        persisted = result.get("persisted", True) is not False
        server_ack = result.get("server_ack", True) is not False
        if not persisted:
            log.error("session %s: message %s went out (server ack: %s) but its keys could not be stored",
                      session_id, message_id, server_ack)
        return SentMessage(id=message_id, persisted=persisted, server_ack=server_ack)

