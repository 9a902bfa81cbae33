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

The file is rewritten whole (~320 bytes per tenant), so at 1000 tenants a write per state change
was most of a restart's disk traffic. Three things keep the count down without weakening the rule
above (issue 19):
- Group commit: changes that arrive while a write is in flight are written together by the next
  write. Each caller still returns only once the write holding ITS change is durable, and a
  failed write raises to every caller whose change it held, with none of them in memory.
- A change that changes nothing (every field already has that value) writes nothing.
- `last_state` of a state a session only passes through (`starting`, `connecting`: not in
  `state.SETTLED`) is kept in memory at once and reaches the file with the next write. Nothing
  reads it after a restart (a restarted bridge starts every session from `stopped` unless the
  record says `logged_out` or `banned`, which are written at once); `python -m bridge sessions`
  reading the file meanwhile shows the settled state before it, for the seconds a start takes.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from bridge.errors import SessionError, SessionNotFound, StoreError
from bridge.sessions.state import SETTLED, SessionState
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
    """Where the registry's records are kept (the file, or the cluster's table). A store whose
    `write` stores all of `records` (the file) says so with `writes_all_records = True`: then one
    write carries every change waiting (group commit); otherwise each change is a write of its own."""

    def read_all(self) -> dict[str, SessionRecord]:
        """Every record by id; raises `StoreError` (a storage fault, or unreadable content)."""
        ...

    def write(self, record: SessionRecord, records: dict[str, SessionRecord]) -> None:
        """Make `record` durable; `records` is the whole registry with it (a file rewrites all).
        Raises `StoreError` with nothing changed."""
        ...


class RegistryFile:
    """`RecordStore` on `.bridge/sessions.json` (see the module docstring)."""

    writes_all_records = True
    """Each write rewrites every record, so one write can carry many changes (group commit)."""

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


_PASSING_FIELDS = frozenset({"last_state", "last_reason", "updated_at"})
_PASSING_STATES = frozenset(s.value for s in SessionState if s not in SETTLED)


def _passing(before: SessionRecord, after: SessionRecord) -> bool:
    """`after` only moves the record to a state it passes through (see the module docstring):
    nothing a restarted bridge reads changed, so it may wait for the next write."""
    if after.last_state not in _PASSING_STATES:
        return False
    return all(getattr(before, f) == getattr(after, f) for f in SessionRecord.__struct_fields__
               if f not in _PASSING_FIELDS)


def _same(before: SessionRecord, after: SessionRecord) -> bool:
    return all(getattr(before, f) == getattr(after, f) for f in SessionRecord.__struct_fields__ if f != "updated_at")


@dataclass
class _Change:
    """One caller's change, waiting for (or in) a write. `make` builds the new record from the
    current one (None when there is none); it raises `SessionNotFound` for an update of nothing."""

    session: str
    make: Callable[[SessionRecord | None], SessionRecord]
    record: SessionRecord | None = None
    error: BaseException | None = None
    done: bool = False
    durable: bool = True


class Registry:
    """The registry's records plus an in-memory copy; every mutation is durable before it returns,
    except a passing state, which waits for the next write (see the module docstring, with group
    commit).

    Thread-safe (a condition around read-modify-write) because many sessions update it from worker
    threads. One bridge process owns the file; the CLI only reads. `store`: where the records
    are kept (default: the file under `bridge_dir`).
    """

    def __init__(self, bridge_dir: Path, store: RecordStore | None = None) -> None:
        self.bridge_dir = bridge_dir
        self.path = BridgeDirs(bridge_dir).registry
        self.store: RecordStore = store if store is not None else RegistryFile(self.path)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: list[_Change] = []
        self._writing = False
        self._data = _RegistryFile()
        self.writes = 0
        """Writes the store was asked for so far, failed ones included (for benchmarks and tests)."""
        self.changes = 0
        """Changes asked for so far (`put`, `update`): each was a write of its own before issue 19."""
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
        with self._changed:
            while self._writing:
                self._changed.wait()
            self._data, self.unavailable = _RegistryFile(sessions=self.store.read_all()), None

    def _submit(self, change: _Change) -> SessionRecord:
        """Make `change` durable (with whatever else is waiting), then part of the registry; or
        raise, with nothing of it anywhere. Returns a copy of the record as stored."""
        with self._changed:
            if self.unavailable is not None:
                raise self.unavailable
            self.changes += 1
            self._pending.append(change)
            while not change.done:
                if self._writing:
                    self._changed.wait()
                else:
                    self._lead()
        if change.error is not None:
            raise change.error
        assert change.record is not None
        return msgspec.structs.replace(change.record)

    def _lead(self) -> None:
        """Write the waiting changes as one (the lock is held on entry and exit, not while writing).

        A store that writes a record at a time (the cluster's table) takes one change per write;
        the file, which is rewritten whole anyway, takes them all."""
        take = len(self._pending) if getattr(self.store, "writes_all_records", False) else 1
        batch, self._pending = self._pending[:take], self._pending[take:]
        sessions = dict(self._data.sessions)
        written: list[_Change] = []
        for change in batch:
            try:
                before = sessions.get(change.session)
                change.record = change.make(before)
            except BaseException as exc:  # SessionNotFound: this change fails, the others go on
                change.error, change.done = exc, True
                continue
            sessions[change.session] = change.record
            if before is not None and (_same(before, change.record) or _passing(before, change.record)):
                change.durable = False
            written.append(change)
        durable = [c for c in written if c.durable]
        if not durable:
            self._finish(written, sessions, None)
            return
        self._writing = True
        self._lock.release()
        error: BaseException | None = None
        try:
            last = durable[-1].record
            assert last is not None
            self.store.write(last, sessions)
        except BaseException as exc:
            error = exc
        finally:
            self._lock.acquire()
            self._writing = False
            self.writes += 1
        self._finish(written, sessions, error)

    def _finish(self, batch: list[_Change], sessions: dict[str, SessionRecord], error: BaseException | None) -> None:
        if error is None:
            self._data = _RegistryFile(self._data.version, sessions)
        for change in batch:
            change.error, change.done = error, True
        self._changed.notify_all()

    def waiting(self) -> int:
        """Changes waiting for the next write (while one is in flight)."""
        with self._lock:
            return len(self._pending)

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
        stored = msgspec.structs.replace(record, updated_at=now, created_at=record.created_at or now)
        return self._submit(_Change(record.id, lambda _current: stored))

    def update(self, session_id: str, **fields: Any) -> SessionRecord:
        """Change some fields of an existing record and write the file (`StoreError`: nothing
        changed)."""
        def make(current: SessionRecord | None) -> SessionRecord:
            if current is None:
                raise SessionNotFound(f"no session {session_id!r}; create it first (POST /api/v1/sessions)")
            changed = msgspec.structs.replace(current, **fields)
            return current if _same(current, changed) else msgspec.structs.replace(changed, updated_at=time.time())

        return self._submit(_Change(session_id, make))
