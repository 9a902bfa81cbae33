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
from typing import Self

from bridge.errors import ErrorCode, StoreError
from bridge.store import durable
from bridge.store.layout import BridgeDirs

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


class _FlockFile:
    """One lock file and its open descriptor; `mode` is `fcntl.LOCK_EX` or `fcntl.LOCK_SH`."""

    def __init__(self, path: Path, mode: int, what: str, locked: type[StoreError], advice: str) -> None:
        self.path = path
        self._mode = mode
        self._what = what
        self._locked = locked
        self._advice = advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to `timeout` seconds (0: try once); raises `locked` if held."""
        if self._fd is not None:
            return
        durable.make_dirs(self.path.parent)
        fd = durable.open_lock_file(self.path)
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
                    raise self._locked(f"{self._what} is locked{who} ({self.path}); {self._advice}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        self._fd = fd
        if self._mode == fcntl.LOCK_EX:
            try:
                durable.rewrite_fd(fd, f"{os.getpid()}\n".encode())
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


class ExclusiveLock:
    """An exclusive flock on one lock file, with the holder's pid recorded in it.

    `with lock: ...`, or `acquire(timeout)` / `release()`. `SessionLock` and `RootLock` are the
    two used; they only choose the file, the wording and the error.
    """

    def __init__(self, path: Path, what: str, locked: type[StoreError], advice: str) -> None:
        self._lock = _FlockFile(path, fcntl.LOCK_EX, what, locked, advice)

    @property
    def path(self) -> Path:
        """The lock file (kept forever; never delete it)."""
        return self._lock.path

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._lock.held

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock (waiting up to `timeout` s) or raise the lock's error naming the holder."""
        self._lock.acquire(timeout)

    def release(self) -> None:
        """Release the lock; safe to call twice."""
        self._lock.release()

    def holder(self) -> int | None:
        """Pid recorded by the current or last holder (diagnostic)."""
        return read_holder(self.path)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class SessionLock(ExclusiveLock):
    """One holder per session: `with SessionLock(bridge_dir, "acme"): ...` (`SessionLockedError`)."""

    def __init__(self, bridge_dir: Path, session_id: str) -> None:
        path = BridgeDirs(bridge_dir).session_lock(session_id)
        self.session_id = session_id
        advice = "stop the other bridge instance or command using it, then retry"
        super().__init__(path, f"session {session_id!r}", SessionLockedError, advice)


class RootLock(ExclusiveLock):
    """One running bridge per auth root: an exclusive flock on `.bridge/locks/bridge.lock`.

    Held for the whole life of a bridge (`serve`) or standalone monitor; the kernel drops it when
    the process exits, even by SIGKILL. A second bridge on the same root gets `RootLockedError`
    naming the holder's pid instead of overwriting the registry and repairing folders twice.
    Within one process, a second `RootLock` on the same root is refused too (flock is per open).
    """

    def __init__(self, bridge_dir: Path) -> None:
        self.bridge_dir = Path(bridge_dir)
        advice = (
            "another bridge or standalone monitor already runs on this auth root: stop it first "
            "(or give this one its own BRIDGE_AUTH_ROOT); two on one root would overwrite each "
            "other's registry and repair the same folders twice"
        )
        path = BridgeDirs(self.bridge_dir).locks / ROOT_LOCK
        super().__init__(path, f"the auth root {self.bridge_dir.parent}", RootLockedError, advice)


class RepositoryLock:
    """Shared (snapshot writers) or exclusive (prune) lock on the object store."""

    def __init__(self, bridge_dir: Path, *, exclusive: bool, timeout: float = 60.0) -> None:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self._timeout = timeout
        path = BridgeDirs(bridge_dir).locks / REPOSITORY_LOCK
        advice = "a prune or snapshot is running; retry when it has finished"
        self._lock = _FlockFile(path, mode, "the snapshot repository", SessionLockedError, advice)

    def __enter__(self) -> RepositoryLock:
        self._lock.acquire(self._timeout)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
