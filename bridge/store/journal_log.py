"""`JournalLog`: the append-only, segmented write-ahead log with group commit.

Why a log: a batch becomes durable with ONE `fdatasync` of a file that only grows, instead of one
fsync per key file plus the folder. Why group commit: a thread that appends while another thread's
fdatasync is in flight does not start its own; it waits, and the next fdatasync (run by whichever
waiter gets there first) covers every record appended meanwhile. `append` returns only when the
record is on stable storage: that is the acknowledgement.

Segments are files `<first seq, 20 digits>.wal` in one folder. `rotate` closes the current
segment (after fsyncing it) and starts the next, so a checkpoint can make the legacy files durable
without stopping writers and then `drop_through` the old segments.

Failure rules (nothing acknowledged is ever lost, nothing half-written is ever acknowledged):
- a failed append (disk full) cuts the partial record off again and raises `StoreError`; the log
  stays usable;
- a failed fdatasync (EIO) or a failed cut leaves the log unusable (`StoreError` on every call):
  after a failed fsync the kernel's page cache may claim bytes that never reached the disk, so the
  only safe continuation is to reopen and recover from what is really on disk.

One syncfs for many logs (`sync_together`, used by bridge/store/group_commit.py): a group of
sessions' batches would otherwise cost one fdatasync per journal; one `syncfs` of their file
system makes all of them durable at once (docs/performance.md, "Group commit across sessions").
It stands in for the fdatasync exactly, under the same rules: the log is marked `_syncing` while
it runs (no thread starts its own fdatasync meanwhile; they wait and are covered), only records
appended before it started count as durable after it, and a failed syncfs fails every log it
was covering as a failed fdatasync fails one (cut back, unusable): syncfs cannot say whose page
failed to reach the disk. Its error report is only complete for a descriptor opened before the
bytes it covers were written (syncfs compares the file system's error cursor with the one the
descriptor sampled at open), so every log takes a share of one long-lived descriptor per file
system (`SharedSync`, keyed by the device of the log's segment, so a root remounted elsewhere gets
a descriptor of its own) when it opens, before its first append, and gives it back when it closes
(the last one closes the descriptor, so the bridge never holds an unmount up longer than its logs). Whoever sees
an error consumes it for that descriptor; so after one the descriptor is retired: later groups on
that file system fdatasync each journal, whose own descriptors still report the error precisely,
until every log on it was closed and reopened. Only on Linux >= 5.8 (`durable.syncfs_reports_errors`);
elsewhere `file_system` is None and logs are only fdatasynced.

`open` takes an exclusive `flock` on `<folder>/lock` (one process per journal; the kernel drops
it when the holder dies), reads every segment, cuts a torn tail off the last one and returns the
valid records for replay. Damage that a later valid record proves was acknowledged raises
`JournalCorruptError` and changes nothing.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from bridge.errors import ErrorCode, StoreError
from bridge.store import durable
from bridge.store.journal_record import Damage, Frame, frame, scan

log = logging.getLogger(__name__)

SEGMENT_SUFFIX: Final = ".wal"
LOCK_FILE: Final = "lock"


class JournalCorruptError(StoreError):
    """A journal record that was acknowledged is damaged on disk: nothing was replayed or changed."""

    code = ErrorCode.JOURNAL_CORRUPT


class JournalBusyError(StoreError):
    """Another process holds this journal (a running bridge owns the session)."""

    code = ErrorCode.JOURNAL_BUSY


class Recovery(msgspec.Struct):
    """What `JournalLog.open` found: the records to replay and the torn tail it ignored."""

    frames: list[Frame]
    torn_records: int = 0
    torn_bytes: int = 0
    damage: Damage | None = None


class LogStats(msgspec.Struct):
    """Counters of one open log (tests and the benchmark read them)."""

    records: int = 0
    fsyncs: int = 0
    bytes: int = 0
    #: syncfs calls (`sync_together`) that made records of this log durable instead of an fdatasync.
    syncfs: int = 0


class SharedSync:
    """One file system's long-lived syncfs descriptor, shared by the logs open on it (module docstring)."""

    def __init__(self, handle: durable.FileSystemSync) -> None:
        self.handle = handle
        self.device = handle.device
        self.users = 0
        self.lock = threading.Lock()
        #: The error a syncfs on it reported: from then on its logs are fdatasynced one by one.
        self.retired: OSError | None = None

    @property
    def usable(self) -> bool:
        """Neither retired nor closed (call with `lock` held)."""
        return self.retired is None and not self.handle.closed

    def sync(self, target: str, why: str) -> None:
        """syncfs through the descriptor (call with `lock` held). Any failure retires it (the error is
        consumed for this descriptor, module docstring) and is raised as OSError."""
        try:
            self.handle.sync(target)
        except Exception as exc:  # anything but success leaves the records unproven
            error = exc if isinstance(exc, OSError) else OSError(errno.EIO, f"syncfs did not complete: {exc!r}")
            self.retired = error
            log.error("syncfs of %s %s failed (%s); journals on this file system are fdatasynced one by one "
                      "until they are reopened", self.handle.folder, why, exc)
            raise error from exc


_shared: dict[int, SharedSync] = {}
_shared_lock = threading.Lock()


def _acquire_shared(folder: Path, device: int) -> SharedSync | None:
    """A share of the syncfs descriptor of `device` (opened at `folder`'s parent if needed); None
    where syncfs cannot stand in for fdatasync (old kernel, no syncfs, a parent on another device)."""
    if not durable.syncfs_reports_errors():
        return None
    with _shared_lock:
        entry = _shared.get(device)
        if entry is None:
            try:
                handle = durable.FileSystemSync(folder.parent)
            except OSError as exc:
                log.warning("journal %s: no syncfs descriptor (%s); its batches are fdatasynced", folder, exc)
                return None
            if handle.device != device:
                handle.close()
                return None
            entry = _shared[device] = SharedSync(handle)
        entry.users += 1
        return entry


def _release_shared(entry: SharedSync) -> None:
    with _shared_lock:
        entry.users -= 1
        if entry.users > 0:
            return
        if _shared.get(entry.device) is entry:
            del _shared[entry.device]
    with entry.lock:
        entry.handle.close()


def sync_together(logs: Sequence[JournalLog], shared: SharedSync) -> bool:
    """Make every record appended so far to `logs` (all on `shared`'s file system) durable with ONE syncfs.

    Returns False, having done nothing, when `shared` is retired or closed (then the caller
    fdatasyncs each log). Otherwise True: each log is durable up to where it was when the syncfs
    began, or, if the syncfs failed, unusable with its unsynced records cut off, exactly as after a
    failed fdatasync (its waiters raise StoreError). Never raises for the syncfs itself.
    """
    with shared.lock:
        if not shared.usable:
            return False
        begun = [(one, target) for one in logs if (target := one._begin_shared_sync()) is not None]
        if not begun:
            return True
        error: OSError | None = None
        try:
            shared.sync("journal_syncfs", f"for a group commit of {len(begun)} journal(s)")
        except OSError as exc:
            error = exc
        for one, (seq, size) in begun:
            one._end_shared_sync(seq, size, error)
    return True


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(folder: Path) -> list[tuple[int, Path]]:
    """`(first_seq, path)` of every segment in `folder`, oldest first."""
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for name in names:
        stem = name[: -len(SEGMENT_SUFFIX)]
        if name.endswith(SEGMENT_SUFFIX) and stem.isdigit():
            found.append((int(stem), folder / name))
    return sorted(found)


def take_lock(folder: Path) -> int:
    """Take the journal's exclusive flock (returns its fd) or raise JournalBusyError."""
    path = folder / LOCK_FILE
    fd = durable.open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise JournalBusyError(
                f"the journal {folder} is in use by another process (a bridge running this session); "
                "stop that session first, or act through that bridge's API"
            ) from exc
        raise durable.explain_os_error(exc, path, "locking") from exc
    return fd


class JournalLog:
    """One open journal folder (see module docstring). Thread-safe."""

    def __init__(self, folder: Path, lock_fd: int, segments: list[tuple[int, Path]], next_seq: int) -> None:
        self.folder = folder
        self._lock_fd = lock_fd
        self._segments = segments
        self._cond = threading.Condition(threading.Lock())
        self._next_seq = next_seq
        self._appended_seq = next_seq - 1
        self._durable_seq = next_seq - 1
        self._syncing = False
        self._failed: StoreError | None = None
        self.stats = LogStats()
        path = segments[-1][1]
        try:
            self._fd = durable.open_for_append(path)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:  # `open` releases the lock
            raise durable.explain_os_error(exc, path, "opening the journal segment") from exc
        self._durable_size = self._size
        #: The syncfs descriptor of this log's file system, taken before the first append (None: fdatasync only).
        self.file_system = _acquire_shared(folder, os.fstat(self._fd).st_dev)

    # ----- open / recover -------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path) -> tuple[JournalLog, Recovery]:
        """Lock, read and repair `folder`; see module docstring. Raises JournalCorruptError/JournalBusyError."""
        durable.make_dirs(folder)
        lock_fd = take_lock(folder)
        try:
            segments = list_segments(folder)
            recovery = Recovery(frames=[])
            next_seq = segments[0][0] if segments else 1
            for index, (first_seq, path) in enumerate(segments):
                if first_seq != next_seq:
                    raise JournalCorruptError(
                        f"journal segment {path} starts at record {first_seq}, expected {next_seq}: "
                        f"a segment is missing. {_corrupt_advice(folder)}"
                    )
                result = scan(path.read_bytes(), first_seq)
                recovery.frames.extend(result.frames)
                next_seq = first_seq + len(result.frames)
                if result.damage is None:
                    continue
                last = index == len(segments) - 1
                if result.damage.acknowledged or not last:
                    raise JournalCorruptError(
                        f"journal segment {path} is damaged at byte {result.damage.offset} "
                        f"(record {result.damage.expected_seq}: {result.damage.reason}) and that record was "
                        f"acknowledged; nothing was replayed. {_corrupt_advice(folder)}"
                    )
                recovery.damage = result.damage
                recovery.torn_records = 1 + result.damage.valid_after
                recovery.torn_bytes = result.damage.bytes_after
                _cut(path, result.good_end)
                log.warning(
                    "journal %s: ignored a torn tail of %d byte(s) (%s); it was never acknowledged",
                    path,
                    result.damage.bytes_after,
                    result.damage.reason,
                )
            if not segments:
                segments = [(next_seq, folder / segment_name(next_seq))]
            return cls(folder, lock_fd, segments, next_seq), recovery
        except BaseException:
            os.close(lock_fd)
            raise

    # ----- append with group commit ---------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Append one record and return its seq once it is on stable storage (group commit)."""
        seq = self.write(payload)
        self.wait_durable(seq)
        return seq

    def write(self, payload: bytes) -> int:
        """Append one record without waiting for it to be durable; returns its seq.

        Nothing may be acknowledged for it before `wait_durable(seq)` returned. Writing the records
        of many batches first and then waiting lets one fdatasync cover all of them.
        """
        with self._cond:
            self._check_usable()
            seq = self._next_seq
            data = frame(seq, self._durable_seq, payload)
            start = self._size
            try:
                durable.append_bytes(self._fd, data)
            except OSError as exc:
                self._cut_back(start, exc)
                raise durable.explain_os_error(exc, self._segments[-1][1], "appending a batch to") from exc
            self._size += len(data)
            self._next_seq += 1
            self._appended_seq = seq
            self.stats.records += 1
            self.stats.bytes += len(data)
        return seq

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` is on stable storage (fdatasyncs unless another thread's covers it)."""
        with self._cond:
            self._wait_durable(seq)

    def _wait_durable(self, seq: int) -> None:
        while self._durable_seq < seq:
            self._check_usable()
            if self._syncing:
                self._cond.wait()
                continue
            self._sync_locked(release=True)

    def _sync_locked(self, *, release: bool) -> None:
        """fdatasync everything appended so far (called with the lock held; `release` drops it meanwhile)."""
        self._syncing = True
        target_seq, target_size, fd = self._appended_seq, self._size, self._fd
        error: OSError | None = None
        if release:
            self._cond.release()
        try:
            durable.sync_data(fd)
        except OSError as exc:
            error = exc
        finally:
            if release:
                self._cond.acquire()
            self._syncing = False
        self.stats.fsyncs += 1
        self._settle_sync(target_seq, target_size, error)
        if error is not None:
            raise durable.explain_os_error(error, self._segments[-1][1], "syncing the journal") from error

    def _settle_sync(self, target_seq: int, target_size: int, error: OSError | None) -> None:
        """After an fdatasync or a shared syncfs (lock held): the records up to `target_seq` are
        durable, or, on `error`, the unsynced tail is cut off and the log fails; waiters are woken."""
        if error is not None:
            self._cut_back(self._durable_size, error, always_fail=True)
        else:
            self._durable_seq = max(self._durable_seq, target_seq)
            self._durable_size = max(self._durable_size, target_size)
        self._cond.notify_all()

    def _begin_shared_sync(self) -> tuple[int, int] | None:
        """`sync_together`, step 1: claim the sync of everything appended so far; None: nothing to
        sync (or the log failed). The caller must `_end_shared_sync` what this returned."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._failed is not None or self._durable_seq >= self._appended_seq:
                return None
            self._syncing = True
            return self._appended_seq, self._size

    def _end_shared_sync(self, target_seq: int, target_size: int, error: OSError | None) -> None:
        """`sync_together`, step 2: `_settle_sync` for the syncfs, as `_sync_locked` after its fdatasync."""
        with self._cond:
            self._syncing = False
            self.stats.syncfs += 1
            self._settle_sync(target_seq, target_size, error)

    def _cut_back(self, size: int, cause: OSError, *, always_fail: bool = False) -> None:
        """Cut the current segment back to `size` bytes; if that fails too, the log becomes unusable.

        Used after a failed append (the partial record goes, earlier records stay) and after a failed
        fdatasync (the unsynced group goes: it was never acknowledged).
        """
        try:
            durable.truncate_fd(self._fd, size)
            self._size = size
        except OSError as exc:
            log.error("journal %s: could not cut a failed record off (%s)", self.folder, exc)
            always_fail = True
        if always_fail:
            self._failed = durable.explain_os_error(cause, self._segments[-1][1], "writing the journal")
            self._cond.notify_all()

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StoreError(
                f"{self._failed} The journal {self.folder} refuses further batches until the session is "
                "restarted (recovery then replays exactly what reached the disk).",
                code=self._failed.code,
            )

    def sync_file_system(self) -> bool:
        """syncfs this log's file system through its long-lived descriptor: for a checkpoint, whose
        legacy files were written without fsync. False when there is none or it is retired; then
        fsync the files one by one, NOT a syncfs through a fresh descriptor, which misses an error
        another syncfs caller (a group commit, another process) already saw. Raises OSError, and
        retires the descriptor, when the file system reports a write-back error."""
        shared = self.file_system
        if shared is None:
            return False
        with shared.lock:
            if not shared.usable:
                return False
            shared.sync("syncfs", "for a checkpoint")
        return True

    # ----- rotation -------------------------------------------------------------------------
    def rotate(self) -> int:
        """Make every appended record durable, start a new segment if the current one has any.

        Returns the seq of the last record before the new segment (0: none ever written).
        """
        with self._cond:
            self._check_usable()
            while self._syncing:
                self._cond.wait()
            if self._durable_seq < self._appended_seq:
                self._sync_locked(release=False)
            last = self._appended_seq
            if self._size == 0:
                return last
            path = self.folder / segment_name(self._next_seq)
            try:
                new_fd = durable.open_for_append(path)
            except OSError as exc:
                raise durable.explain_os_error(exc, path, "starting the journal segment") from exc
            os.close(self._fd)
            self._fd = new_fd
            self._segments.append((self._next_seq, path))
            self._size = self._durable_size = 0
            return last

    def drop_through(self, seq: int) -> int:
        """Delete closed segments whose records all have seq <= `seq`; returns how many."""
        with self._cond:
            dropped = []
            while len(self._segments) > 1 and self._segments[1][0] - 1 <= seq:
                dropped.append(self._segments.pop(0)[1])
        for path in dropped:
            durable.remove_file(path)
        if dropped:
            durable.fsync_dir(self.folder)
        return len(dropped)

    @property
    def last_seq(self) -> int:
        """Seq of the newest appended record."""
        return self._appended_seq

    @property
    def bytes_since_rotation(self) -> int:
        """Size of the current segment."""
        return self._size

    def close(self) -> None:
        """Close the segment and release the lock (records stay for the next open to replay)."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            if self._failed is None:
                self._failed = StoreError(f"the journal {self.folder} is closed")
            shared, self.file_system = self.file_system, None
        if shared is not None:
            _release_shared(shared)


def _cut(path: Path, size: int) -> None:
    try:
        durable.cut_file(path, size)
    except OSError as exc:
        raise durable.explain_os_error(exc, path, "cutting the torn tail off") from exc


def _corrupt_advice(folder: Path) -> str:
    return (
        f"The session's files are as the last materialisation left them; the journal {folder} is kept "
        "untouched. Restore the latest snapshot, or set the journal aside with "
        "`bridge.store.journal.set_aside` to start from the files as they are."
    )
