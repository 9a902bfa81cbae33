"""Which sessions exist and whether they should run: `AUTH_ROOT/.bridge/sessions.json`.

The registry is what lets a restarted bridge bring every tenant back (`start_all()`), and what
`python -m bridge sessions` lists. It records only intent and bookkeeping (login method, phone for
pairing, desired running state, last known state); credentials stay in the session folders.

Writes are atomic and durable (temp file, fsync, rename, fsync folder) so a crash mid-write leaves
either the old or the new registry, never a truncated one. Every change is done-or-unchanged in
memory too: the new content is built aside, written durably, and only then becomes the registry;
a write that fails (full disk, read-only file system) raises its `StoreError` to the caller and the
registry, in memory and on disk, is exactly what it was. A registry that cannot be parsed is
refused loudly instead of being overwritten with an empty one: losing it would not lose creds, but
it would silently stop every tenant from being started again.

Folders adopted in place by `python -m bridge adopt` may live outside AUTH_ROOT; the adopt command
records them in `.bridge/adopted.json` (bridge.store.adopt), and `SessionManager` registers every
adopted session it finds there that the registry does not know yet (`folder` = that path).

Where the records are kept is a seam (`RecordStore`): the file above by default (`RegistryFile`);
in cluster mode the `cluster_sessions` table of PostgreSQL (bridge/cluster/tenants.py), so every
node sees the same tenants. The in-memory copy and its done-or-unchanged rule are the same for both.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from bridge.errors import SessionError, SessionNotFound, StoreError
from bridge.sessions.state import SessionState
from bridge.store.durable import atomic_write, explain_os_error, is_storage_fault, make_dirs
from bridge.store.layout import BridgeDirs

LoginMethod = Literal["qr", "pairing_code"]


class SessionRecord(msgspec.Struct, kw_only=True):
    """One registered session."""

    id: str
    login: LoginMethod = "qr"
    phone: str | None = None
    desired_running: bool = False
    folder: str | None = None  # absolute path of an adopted folder outside AUTH_ROOT; None = AUTH_ROOT/<id>
    archived: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    last_state: str = SessionState.STOPPED.value
    last_reason: str = ""


class _RegistryFile(msgspec.Struct):
    version: int = 1
    sessions: dict[str, SessionRecord] = msgspec.field(default_factory=dict)


def _atomic_write(path: Path, data: bytes) -> None:
    """The store's durable write (temp, fsync, rename, fsync folder), creating `.bridge/` first."""
    make_dirs(path.parent)
    atomic_write(path, data)


class RecordStore(Protocol):
    """Where the registry's records are kept (the file, or the cluster's table)."""

    def read_all(self) -> dict[str, SessionRecord]:
        """Every record by id; raises `StoreError` (a storage fault, or unreadable content)."""
        ...

    def write(self, record: SessionRecord, records: dict[str, SessionRecord]) -> None:
        """Make `record` durable; `records` is the whole registry with it (a file rewrites all).
        Raises `StoreError` with nothing changed."""
        ...


class RegistryFile:
    """`RecordStore` on `.bridge/sessions.json` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_all(self) -> dict[str, SessionRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise explain_os_error(exc, self.path, "reading") from exc
        try:
            return msgspec.json.decode(data, type=_RegistryFile).sessions
        except msgspec.DecodeError as exc:
            raise SessionError(
                f"session registry {self.path} is unreadable ({exc}); restore it from a backup or fix it by hand. "
                "The bridge will not overwrite it with an empty one."
            ) from exc

    def write(self, record: SessionRecord, records: dict[str, SessionRecord]) -> None:
        new = _RegistryFile(sessions=records)
        _atomic_write(self.path, msgspec.json.format(msgspec.json.encode(new), indent=2) + b"\n")


class Registry:
    """The registry's records plus an in-memory copy; every mutation is written through at once.

    Thread-safe (a lock around read-modify-write) because many sessions update it from worker
    threads. One bridge process owns the file; the CLI only reads. `store`: where the records
    are kept (default: the file under `bridge_dir`).
    """

    def __init__(self, bridge_dir: Path, store: RecordStore | None = None) -> None:
        self.bridge_dir = bridge_dir
        self.path = BridgeDirs(bridge_dir).registry
        self.store: RecordStore = store if store is not None else RegistryFile(self.path)
        self._lock = threading.Lock()
        self._data = _RegistryFile()
        self.unavailable: StoreError | None = None
        """A storage fault kept the registry from being read: it is empty and refuses every write
        (an empty registry written over the unread file would lose every tenant) until `load()`."""
        try:
            self.load()
        except StoreError as exc:
            if not is_storage_fault(exc):
                raise
            self.unavailable = exc

    def load(self) -> None:
        """(Re)read the records; raises the `StoreError` if storage still refuses. The read holds the
        lock, so a write of another thread is never lost from memory by a read that began before it."""
        with self._lock:
            self._data, self.unavailable = _RegistryFile(sessions=self.store.read_all()), None

    def _commit(self, record: SessionRecord) -> None:
        """Write the registry with `record` in it, then (only then) make that the registry."""
        if self.unavailable is not None:
            raise self.unavailable
        new = _RegistryFile(self._data.version, {**self._data.sessions, record.id: record})
        self.store.write(record, new.sessions)
        self._data = new

    def all(self, *, include_archived: bool = True) -> list[SessionRecord]:
        """Every record, sorted by id."""
        with self._lock:
            records = sorted(self._data.sessions.values(), key=lambda r: r.id)
        return [msgspec.structs.replace(r) for r in records if include_archived or not r.archived]

    def get(self, session_id: str) -> SessionRecord:
        """A copy of the record; `SessionNotFound` if it does not exist."""
        with self._lock:
            record = self._data.sessions.get(session_id)
            if record is None:
                raise SessionNotFound(f"no session {session_id!r}; create it first (POST /api/v1/sessions)")
            return msgspec.structs.replace(record)

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._data.sessions

    def put(self, record: SessionRecord) -> SessionRecord:
        """Insert or replace a record and write the file (`StoreError`: nothing changed)."""
        now = time.time()
        with self._lock:
            stored = msgspec.structs.replace(record, updated_at=now, created_at=record.created_at or now)
            self._commit(stored)
            return msgspec.structs.replace(stored)

    def update(self, session_id: str, **fields: Any) -> SessionRecord:
        """Change some fields of an existing record and write the file (`StoreError`: nothing
        changed)."""
        with self._lock:
            record = self._data.sessions.get(session_id)
            if record is None:
                raise SessionNotFound(f"no session {session_id!r}; create it first (POST /api/v1/sessions)")
            stored = msgspec.structs.replace(record, **fields, updated_at=time.time())
            self._commit(stored)
            return msgspec.structs.replace(stored)
