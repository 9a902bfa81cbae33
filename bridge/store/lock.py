"""Advisory locks under `AUTH_ROOT/.bridge/locks/`, so two bridge instances never run one session.

Two bridges (or a bridge and an operator's `restore`) acting on the same auth folder at once is
how credentials get torn: one process writes creds.json while the other swaps the folder away.
`SessionLock` takes `fcntl.flock(LOCK_EX)` on `.bridge/locks/<session>.lock`; the kernel drops
the lock when the holder exits, even by SIGKILL, so a crash never leaves a stale lock behind.

`RootLock` takes `.bridge/locks/bridge.lock` for the whole life of a bridge (or standalone
monitor): one auth root has one running bridge, so two never overwrite each other's registry or
repair the same folder twice.

`RepositoryLock` guards the shared object store: `Snapshots.create` holds it shared while it
writes objects and a manifest, `prune` holds it exclusive while it deletes unreferenced objects,
so prune can never delete an object a snapshot being written is about to reference.

Every OSError (a read-only root, a folder the bridge may not enter) becomes a classified
`StoreError` (`durable.explain_os_error`), never a raw traceback. On a read-only root an existing
lock file is opened read-only: flock works on it, only the holder pid cannot be written.

Lock files are never deleted: unlinking a flock file while another process waits on it would let
two processes hold "the" lock on two different inodes. flock locks belong to the open file
description, so one process must not open the same session lock twice (the second open blocks).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from bridge.errors import ErrorCode, StoreError
from bridge.store import durable
from bridge.store.layout import validate_session_id

log = logging.getLogger(__name__)

LOCKS_DIR = "locks"
REPOSITORY_LOCK = "repository.lock"
ROOT_LOCK = "bridge.lock"


class SessionLockedError(StoreError):
    """Another process holds the lock: stop that bridge instance (or wait) before retrying."""

    code: str = ErrorCode.SESSION_LOCKED


class RootLockedError(StoreError):
    """Another bridge (or standalone monitor) runs on this auth root: stop it, or use another root."""

    code: str = ErrorCode.ROOT_LOCKED


def _locks_dir(bridge_dir: Path) -> Path:
    folder = bridge_dir / LOCKS_DIR
    durable.make_dirs(folder)
    return folder


def _open_lock_file(path: Path) -> int:
    """Open (creating) a lock file; an existing one on a read-only file system opens read-only."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES) and path.is_file():
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
        raise durable.explain_os_error(exc, path, "opening the lock file") from exc


_SESSION_ADVICE = "stop the other bridge instance or command using it, then retry"


class _FlockFile:
    """One lock file and its open descriptor; `mode` is `fcntl.LOCK_EX` or `fcntl.LOCK_SH`."""

    def __init__(
        self, path: Path, mode: int, what: str, locked_error: type[StoreError] = SessionLockedError
    ) -> None:
        self.path = path
        self._mode = mode
        self._what = what
        self._locked_error = locked_error
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float = 0.0, *, advice: str = _SESSION_ADVICE) -> None:
        """Take the lock, waiting up to `timeout` seconds (0: try once); raises `locked_error` if held."""
        if self._fd is not None:
            return
        fd = _open_lock_file(self.path)
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, self._mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise durable.explain_os_error(exc, self.path, "locking") from exc
                if time.monotonic() >= deadline:
                    holder = read_holder(self.path)
                    os.close(fd)
                    who = f" by pid {holder}" if holder else ""
                    raise self._locked_error(f"{self._what} is locked{who} ({self.path}); {advice}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        self._fd = fd
        if self._mode == fcntl.LOCK_EX:
            self._write_holder(fd)

    def _write_holder(self, fd: int) -> None:
        """Diagnostics only: the flock itself is the truth, the pid helps the operator."""
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            log.warning("holding %s, but could not record our pid in it: %s", self.path, exc.strerror)

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)


def read_holder(path: Path) -> int | None:
    """The pid the last exclusive holder wrote into the lock file, if any (may be stale)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RootLock:
    """One running bridge per auth root: an exclusive flock on `.bridge/locks/bridge.lock`.

    Held for the whole life of a bridge (`serve`) or standalone monitor; the kernel drops it when
    the process exits, even by SIGKILL. A second bridge on the same root gets `RootLockedError`
    naming the holder's pid instead of overwriting the registry and repairing folders twice.
    Within one process, a second `RootLock` on the same root is refused too (flock is per open).
    """

    def __init__(self, bridge_dir: Path) -> None:
        self.bridge_dir = Path(bridge_dir)
        self.path = self.bridge_dir / LOCKS_DIR / ROOT_LOCK
        self._lock = _FlockFile(self.path, fcntl.LOCK_EX, f"the auth root {self.bridge_dir.parent}", RootLockedError)

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._lock.held

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, or raise `RootLockedError` naming the running bridge's pid."""
        _locks_dir(self.bridge_dir)
        self._lock.acquire(
            timeout,
            advice=(
                "another bridge or standalone monitor already runs on this auth root: stop it first "
                "(or give this one its own BRIDGE_AUTH_ROOT); two on one root would overwrite each "
                "other's registry and repair the same folders twice"
            ),
        )

    def release(self) -> None:
        """Release the lock; safe to call twice."""
        self._lock.release()

    def holder(self) -> int | None:
        """Pid recorded by the current or last holder (diagnostic)."""
        return read_holder(self.path)

    def __enter__(self) -> RootLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class SessionLock:
    """Exclusive advisory lock for one session: `with SessionLock(bridge_dir, "acme"): ...`."""

    def __init__(self, bridge_dir: Path, session_id: str) -> None:
        validate_session_id(session_id)
        self.session_id = session_id
        path = _locks_dir(bridge_dir) / f"{session_id}.lock"
        self._lock = _FlockFile(path, fcntl.LOCK_EX, f"session {session_id!r}")

    @property
    def path(self) -> Path:
        """The lock file (kept forever; never delete it)."""
        return self._lock.path

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._lock.held

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock or raise SessionLockedError naming the holder's pid."""
        self._lock.acquire(timeout)

    def release(self) -> None:
        """Release the lock; safe to call twice."""
        self._lock.release()

    def holder(self) -> int | None:
        """Pid recorded by the current or last holder (diagnostic)."""
        return read_holder(self.path)

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class RepositoryLock:
    """Shared (snapshot writers) or exclusive (prune) lock on the object store."""

    def __init__(self, bridge_dir: Path, *, exclusive: bool, timeout: float = 60.0) -> None:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self._timeout = timeout
        self._lock = _FlockFile(_locks_dir(bridge_dir) / REPOSITORY_LOCK, mode, "the snapshot repository")

    def __enter__(self) -> RepositoryLock:
        self._lock.acquire(self._timeout)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
