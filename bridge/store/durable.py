"""Atomic, durable file writes: the only way the store puts bytes on disk.

Every file is written as: temp file in the same folder, write, fsync, rename over the target,
fsync the folder. A reader (or a crash) therefore sees either the whole old file or the whole new
one, never a prefix. `atomic_write_many` is a group commit: the temp files of one batch are written
and fsynced in parallel by a small thread pool (fsync latency, not CPU, is the cost), renamed one by
one, and the folder is fsynced once for the whole batch.

Failures (disk full, I/O error, permission) become a `StoreError` that names the path and the fix;
the old file is untouched (nothing is renamed until its temp file is complete) and temp files are
removed. Temp names start with `.bridge-tmp.` and carry the writer's pid, so `sweep_temp_files` can
remove the leftovers of a writer that was killed, and never a file of a live one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import itertools
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from bridge.errors import ErrorCode, StoreError
from bridge.metrics import STORE_ERRORS, STORE_FSYNCS, STORE_WRITE_SECONDS
from bridge.store.pool import LazyPool

log = logging.getLogger(__name__)

TEMP_PREFIX: Final = ".bridge-tmp."
#: Batches smaller than this are written inline; the pool only pays off when fsyncs overlap.
PARALLEL_MIN_FILES: Final = 4
POOL_WORKERS: Final = 32

_POOL = LazyPool(POOL_WORKERS, "store-fsync")


#: `StoreError.code` of each storage fault: the operator's fix differs, the bridge's reaction not.
STORAGE_FULL: Final = ErrorCode.STORAGE_FULL
STORAGE_READ_ONLY: Final = ErrorCode.STORAGE_READ_ONLY
STORAGE_PERMISSION: Final = ErrorCode.STORAGE_PERMISSION
STORAGE_IO: Final = ErrorCode.STORAGE_IO
STORAGE_FAULT_CODES: Final[frozenset[str]] = frozenset(
    {STORAGE_FULL, STORAGE_READ_ONLY, STORAGE_PERMISSION, STORAGE_IO}
)
_CODE_BY_ERRNO: Final[dict[int, str]] = {
    errno.ENOSPC: STORAGE_FULL,
    errno.EDQUOT: STORAGE_FULL,
    errno.EROFS: STORAGE_READ_ONLY,
    errno.EACCES: STORAGE_PERMISSION,
    errno.EPERM: STORAGE_PERMISSION,
    errno.EIO: STORAGE_IO,
}


def fault_code(exc: BaseException) -> str | None:
    """The storage-fault code of `exc` or of any exception in its `__cause__` chain, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "code", None)
        if isinstance(current, StoreError) and code in STORAGE_FAULT_CODES:
            return str(code)
        if isinstance(current, OSError) and current.errno in _CODE_BY_ERRNO:
            return _CODE_BY_ERRNO[current.errno]
        current = current.__cause__
    return None


def is_storage_fault(exc: BaseException) -> bool:
    """True when `exc` (or its cause) is the storage failing: full, read-only, permission, I/O.

    Such a fault is not damage: nothing is restored because of it; it is reported once and the
    operation is retried when storage is back.
    """
    return fault_code(exc) is not None


def explain_os_error(
    exc: OSError, path: Path, action: str, *, error_type: type[StoreError] = StoreError
) -> StoreError:
    """Turn an OSError into a `StoreError` telling the operator what broke and what to do.

    Its `code` names the fault (`storage_full`, `storage_read_only`, `storage_permission`,
    `storage_io`), or is `store_error` for anything else.
    """
    code = exc.errno
    reason = os.strerror(code) if code else str(exc)
    where = path.parent if action != "reading" else path
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = f"the file system holding {where} is full: free space (or raise the quota) and retry"
    elif code == errno.EIO:
        fix = "the disk or file system reported an I/O error: check `dmesg`, move the auth root to healthy storage"
    elif code in (errno.EACCES, errno.EPERM):
        fix = f"the bridge user may not access {where}: fix ownership/permissions (chown/chmod)"
    elif code == errno.EROFS:
        fix = f"{where} is on a read-only file system: remount it read-write"
    else:
        fix = "check the file system and permissions of the auth root"
    tail = "" if action == "reading" else " The previous file, if any, is intact."
    return error_type(
        f"{action} {path} failed ({reason}); {fix}.{tail}",
        code=_CODE_BY_ERRNO.get(code or 0, StoreError.code),
    )


@contextmanager
def store_errors(path: Path, action: str, *, error_type: type[StoreError] = StoreError) -> Iterator[None]:
    """Run a block of file operations; any OSError leaves it as a classified `StoreError`."""
    try:
        yield
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else path
        raise explain_os_error(exc, where, action, error_type=error_type) from exc


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """mkdir -p with `mode`, fsyncing each parent that gained an entry; errors are classified."""
    make_dir_set([path], mode)


def make_dir_set(paths: Iterable[Path], mode: int = 0o700) -> None:
    """`make_dirs` for many folders at once: each parent that gained entries is fsynced once.

    A first snapshot creates up to 256 object folders under one parent; this costs one fsync of
    that parent, not 256. Errors are classified.
    """
    parents: set[Path] = set()
    with store_errors(Path("."), "creating the folder"):
        for path in sorted(set(paths)):
            missing: list[Path] = []
            probe = path
            while not probe.is_dir():
                missing.append(probe)
                probe = probe.parent
            for folder in reversed(missing):
                try:
                    folder.mkdir(mode=mode)
                except FileExistsError:
                    if not folder.is_dir():
                        raise
                    continue
                parents.add(folder.parent)
    fsync_dirs(parents)


def fsync_dir(path: Path) -> None:
    """fsync a folder so that renames and new entries in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    STORE_FSYNCS.labels(target="dir").inc()


def temp_name() -> str:
    """A fresh temp file name: dot-prefixed (bridge-private), with our pid for `sweep_temp_files`."""
    return f"{TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(8)}"


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - only when the folder itself is broken
        log.warning("could not remove temp file %s: %s", path, exc)


def write_temp(folder: Path, data: bytes, mode: int = 0o600, *, sync: bool = True) -> Path:
    """Write `data` to a new (fsynced, unless `sync` is False) temp file in `folder`; return its path.

    On failure the temp file is removed and the OSError propagates (the caller names the target).
    """
    tmp = folder / temp_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if sync:
        STORE_FSYNCS.labels(target="file").inc()
    return tmp


@contextmanager
def _timed(op: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        STORE_ERRORS.labels(op=op).inc()
        raise
    STORE_WRITE_SECONDS.observe(time.perf_counter() - start)


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o600, sync_dir: bool = True, sync_file: bool = True
) -> None:
    """Replace `path` with `data` atomically and durably (see module docstring).

    `sync_file=False, sync_dir=False` makes a best-effort copy: still never torn for a reader
    while the machine runs, but a power cut may lose it or leave it empty. Only for copies whose
    original is durable elsewhere (the creds history); readers must validate what they find.
    """
    with _timed("write"):
        try:
            tmp = write_temp(path.parent, data, mode, sync=sync_file)
        except OSError as exc:
            raise explain_os_error(exc, path, "writing") from exc
        try:
            os.replace(tmp, path)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise explain_os_error(exc, path, "renaming into") from exc
        if sync_dir:
            try:
                fsync_dir(path.parent)
            except OSError as exc:
                raise explain_os_error(exc, path, "syncing the folder of") from exc


def rename(source: Path, target: Path, *, sync_dirs: bool = True) -> None:
    """Rename `source` to `target` (replacing it), then fsync both folders; errors are classified."""
    try:
        os.replace(source, target)
        if sync_dirs:
            fsync_dir(target.parent)
            if source.parent != target.parent:
                fsync_dir(source.parent)
    except OSError as exc:
        raise explain_os_error(exc, target, "renaming into") from exc


def remove(path: Path, *, sync_dir: bool = True) -> bool:
    """Unlink one file (True if it was there), then fsync its folder; errors are classified."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise explain_os_error(exc, path, "removing") from exc
    if sync_dir:
        with store_errors(path, "syncing the folder of"):
            fsync_dir(path.parent)
    return True


def atomic_write_many(folder: Path, files: Mapping[str, bytes], *, sync_dir: bool = True) -> None:
    """Write several files of one folder as one group commit.

    All temp files are written and fsynced first (in parallel for larger batches); if any fails,
    every temp file is removed and no target is touched. Then each is renamed over its target and
    the folder is fsynced once. Each file is atomic on its own; a crash during the renames may
    leave some targets new and some old, never a partial file.
    """
    if not files:
        return
    with _timed("write_many"):
        items = list(files.items())
        staged: list[tuple[Path, Path]] = []
        first_error: tuple[OSError, Path] | None = None
        if len(items) < PARALLEL_MIN_FILES:
            for name, data in items:
                try:
                    staged.append((write_temp(folder, data), folder / name))
                except OSError as exc:
                    first_error = (exc, folder / name)
                    break
        else:
            futures = [(name, _POOL.get().submit(write_temp, folder, data)) for name, data in items]
            for name, fut in futures:
                try:
                    staged.append((fut.result(), folder / name))
                except OSError as exc:
                    if first_error is None:
                        first_error = (exc, folder / name)
        if first_error is not None:
            for tmp, _ in staged:
                _unlink_quietly(tmp)
            error, target = first_error
            raise explain_os_error(error, target, "writing") from error
        for index, (tmp, target) in enumerate(staged):
            try:
                os.replace(tmp, target)
            except OSError as exc:
                for later_tmp, _ in staged[index:]:
                    _unlink_quietly(later_tmp)
                raise explain_os_error(exc, target, "renaming into") from exc
        if sync_dir:
            try:
                fsync_dir(folder)
            except OSError as exc:
                raise explain_os_error(exc, folder / items[0][0], "syncing the folder of") from exc


def write_files(files: Mapping[Path, bytes], *, mode: int = 0o600, sync_dirs: bool = True) -> None:
    """Write many files, possibly in several folders, each atomically; fsync each folder once.

    For content-addressed objects (`mode=0o444`: their name says what they hold, so one is only
    ever rewritten when its bytes no longer match) and for copying files into a staging folder.
    Files are written in parallel for larger batches. On failure the files already renamed in
    place stay (the caller owns them: `Snapshots` takes back a failed snapshot's objects, a
    restore removes its staging folder) and the error is classified.
    """
    if not files:
        return
    with _timed("write_files"):
        items = list(files.items())
        errors: list[tuple[OSError, Path]] = []

        def one(item: tuple[Path, bytes]) -> None:
            path, data = item
            tmp = write_temp(path.parent, data, mode)
            try:
                os.replace(tmp, path)
            except BaseException:
                _unlink_quietly(tmp)
                raise

        if len(items) < PARALLEL_MIN_FILES:
            for item in items:
                try:
                    one(item)
                except OSError as exc:
                    errors.append((exc, item[0]))
                    break
        else:
            futures = [(path, _POOL.get().submit(one, (path, data))) for path, data in items]
            for path, fut in futures:
                try:
                    fut.result()
                except OSError as exc:
                    errors.append((exc, path))
        if errors:
            error, target = errors[0]
            raise explain_os_error(error, target, "writing") from error
        if sync_dirs:
            fsync_dirs({path.parent for path, _ in items})


def fsync_dirs(folders: Iterable[Path]) -> None:
    """fsync several folders (in parallel when there are many); errors are classified."""
    todo = sorted(set(folders))
    try:
        if len(todo) < PARALLEL_MIN_FILES:
            for folder in todo:
                fsync_dir(folder)
        else:
            list(_POOL.get().map(fsync_dir, todo))
    except OSError as exc:
        raise explain_os_error(exc, Path(exc.filename) if exc.filename else todo[0], "syncing the folder") from exc


def move_file(source: Path, target: Path) -> bool:
    """Move one file (no folder fsync: the caller syncs both folders once per batch).

    False when `source` does not exist. Across file systems (EXDEV) the bytes are first written
    durably at `target`, then `source` is removed, so a crash leaves the file in at least one place.
    Errors are classified.
    """
    try:
        os.rename(source, target)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise explain_os_error(exc, target, "moving into") from exc
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise explain_os_error(exc, source, "reading") from exc
    atomic_write(target, data)
    remove(source, sync_dir=False)
    return True


_RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported here.

    No folder fsync (the caller syncs once). Raises the classified error for a real failure.
    """
    libc_name = ctypes.util.find_library("c")
    func = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise explain_os_error(OSError(err, os.strerror(err), str(b)), b, "swapping in")


def remove_tree(path: Path) -> None:
    """Remove a bridge-private work folder (a restore's staging) and everything in it; best effort.

    Never for anything holding credentials someone may need: those are moved, not removed.
    """
    shutil.rmtree(path, ignore_errors=True)


def remove_empty_dir(path: Path) -> bool:
    """rmdir `path` if it is empty (True if removed); the parent is not fsynced."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def open_lock_file(path: Path) -> int:
    """Open (creating, mode 0600) a lock file and return its descriptor.

    On a read-only file system (or one the bridge may not write) an existing lock file is opened
    read-only: flock works on that, only the holder's pid cannot be recorded. Errors are classified.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES) and path.is_file():
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
        raise explain_os_error(exc, path, "opening the lock file") from exc


def rewrite_fd(fd: int, data: bytes) -> None:
    """Replace the whole content of an open file with `data` (lock files: the holder's pid).

    Not atomic and not fsynced: only for diagnostics whose loss or tear is harmless. Raises OSError.
    """
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def append_line(path: Path, line: bytes) -> None:
    """Append one line (a newline is added if missing) to `path` and fsync it; errors classified.

    For small journals (the monitor's incidents): a new file's folder entry is fsynced too, so a
    line acknowledged is a line that survives a power cut.
    """
    data = line if line.endswith(b"\n") else line + b"\n"
    try:
        fd = open_for_append(path)
        try:
            append_bytes(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise explain_os_error(exc, path, "appending to") from exc
    STORE_FSYNCS.labels(target="file").inc()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_files(folder: Path) -> list[str]:
    """Remove temp files left in `folder` by writers that no longer run; return their names.

    A temp file is never credentials that anyone was promised: its rename had not happened, so the
    write it belonged to was never acknowledged. Files of live writers (our own pid included) stay.
    """
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        pid_text = name[len(TEMP_PREFIX) :].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        _unlink_quietly(folder / name)
        removed.append(name)
    if removed:
        log.info("removed %d temp file(s) of dead writers in %s", len(removed), folder)
    return removed


# ===== Write-ahead journal primitives (used by bridge/store/journal*.py) =========================
# Appended as one block so the rest of this module can be reorganised independently. The journal
# makes a batch durable with ONE fdatasync of an append-only file; the legacy files are then
# written with `write_unsynced` (atomic rename, no fsync) and made durable together at a
# checkpoint (`sync_file_system`).

def open_for_append(path: Path) -> int:
    """Open `path` for appending (created with mode 0600; a new file's folder entry is fsynced).

    Raises OSError; the caller names what the file is for.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        fsync_dir(path.parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_bytes(fd: int, data: bytes) -> None:
    """Write all of `data` at the end of `fd` (opened by `open_for_append`). Raises OSError.

    On error a prefix of `data` may have been written: the caller cuts it off with `truncate_fd`.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def sync_data(fd: int) -> None:
    """fdatasync `fd`: its bytes (and its size) are on stable storage when this returns."""
    os.fdatasync(fd)
    STORE_FSYNCS.labels(target="journal").inc()


def truncate_fd(fd: int, size: int) -> None:
    """Cut the file of `fd` back to `size` bytes and make that durable. Raises OSError."""
    os.ftruncate(fd, size)
    os.fsync(fd)
    STORE_FSYNCS.labels(target="journal").inc()


def cut_file(path: Path, size: int) -> None:
    """Cut the file at `path` back to `size` bytes, durably (a journal's torn tail). Raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        truncate_fd(fd, size)
    finally:
        os.close(fd)


def write_unsynced(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (temp file + rename) but without any fsync.

    A reader never sees a partial file; a power cut may lose the new file (the journal still holds
    it until the next `sync_file_system`). Raises OSError; the temp file is removed on failure.
    """
    tmp = path.parent / temp_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            append_bytes(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def move_unsynced(src: Path, dst: Path) -> bool:
    """Move `src` to `dst` (no fsync); False if `src` does not exist. Raises OSError.

    Across file systems (EXDEV) the bytes are copied with `write_unsynced` first and the original
    removed afterwards, so a crash leaves the file in at least one of the two places.
    """
    try:
        os.rename(src, dst)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return False
    write_unsynced(dst, data)
    os.unlink(src)
    return True


def remove_file(path: Path) -> None:
    """Unlink `path` (absent is fine). Only for bridge-private files the journal no longer needs."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def sync_file_system(path: Path) -> bool:
    """`syncfs(2)` the file system holding `path`: every write and rename on it becomes durable.

    Returns False when the syscall is not available (then the caller fsyncs files one by one).
    Raises OSError when the file system reports a write-back error.
    """
    if _libc_syncfs() is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs_fd(fd, "syncfs")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)
    return True


def fsync_file(path: Path) -> bool:
    """fsync one existing file (the fallback of `sync_file_system`); False if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    STORE_FSYNCS.labels(target="file").inc()
    return True


def open_scratch(path: Path) -> int:
    """Open `path` for writing as a new, empty file (mode 0600; a leftover of that name is cut to
    zero) without fsyncing its folder. Only for scratch files a crash may lose at no cost: media on
    its way in or out and download parts (bridge/media/spool.py), never state. Raises OSError; the
    caller names what the file is for.
    """
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)


# ===== One syncfs for many journals (used by bridge/store/journal_log.py and group_commit.py) =====
# Why a long-lived descriptor: syncfs(2) reports a write-back error through the file system's
# errseq cursor, compared with the one the descriptor sampled when it was OPENED. A descriptor
# opened per call (`sync_file_system`) misses every error from a background write-back that
# happened before that open, e.g. of a journal page the kernel wrote early; a descriptor opened
# before the first byte it is meant to cover reports every error since. Linux reports write-back
# errors to syncfs this way only since 5.8; older kernels return success for them.

#: First kernel whose syncfs reports write-back errors (errseq per super block).
SYNCFS_ERRSEQ_KERNEL: Final = (5, 8)


def kernel_version(release: str) -> tuple[int, int] | None:
    """(major, minor) of a `uname -r` string such as `6.1.0-13-amd64`; None when it does not parse."""
    parts = release.split(".", 2)
    if len(parts) < 2:
        return None
    minor = "".join(itertools.takewhile(str.isdigit, parts[1]))
    if not parts[0].isdigit() or not minor:
        return None
    return int(parts[0]), int(minor)


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        func: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return func


def syncfs_reports_errors() -> bool:
    """True on Linux >= 5.8 with a libc that has syncfs: a `FileSystemSync` may stand in for fsyncs."""
    if sys.platform != "linux":
        return False
    version = kernel_version(os.uname().release)
    return version is not None and version >= SYNCFS_ERRSEQ_KERNEL and _libc_syncfs() is not None


def syncfs_fd(fd: int, target: str = "journal_syncfs") -> None:
    """`syncfs(2)` on an open descriptor; raises OSError (a write-back error since `fd` was opened).

    `target` labels it in `bridge_store_fsyncs_total` (`syncfs`: a checkpoint's)."""
    func = _libc_syncfs()
    if func is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    if func(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    STORE_FSYNCS.labels(target=target).inc()


class FileSystemSync:
    """A descriptor kept open on one file system, so its `sync()` reports every write-back error
    on that file system since it was opened (see the block comment above). Raises OSError."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.device = os.fstat(self._fd).st_dev

    def sync(self, target: str = "journal_syncfs") -> None:
        """syncfs: every write and rename on the file system is durable, or OSError."""
        if self._fd < 0:
            raise OSError(errno.EBADF, f"the syncfs descriptor of {self.folder} is closed")
        syncfs_fd(self._fd, target)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
