"""The write-ahead journal under `AuthStore`: every batch atomic across a crash, one fsync per batch.

`AuthBackend` is the seam under `AuthStore` (the cluster backend will keep the same batches in
PostgreSQL). `Journal` is the default, file-based implementation for the legacy layout:

1. `commit(writes, trash)` appends the batch as ONE checksummed record to `.bridge/journal/<session>/`
   and returns when one `fdatasync` made it durable (group commit: concurrent batches share it).
   That is the acknowledgement. The batch then sits in an in-memory overlay.
2. A worker (a small shared pool, one drain at a time per journal) writes the legacy files from
   the record afterwards: temp + rename, no fsync, trash moves for deletions. Consecutive records
   waiting together are written together: a write that a later one of them overwrites (with no
   trash of that name in between) is skipped, so the file gets the newest bytes once and every
   trash still moves exactly what the file held at that point.
3. Readers consult the overlay first and the files second, so an acknowledged batch is never
   invisible, even before its files exist.
4. `checkpoint()` starts a new segment, waits until every older record is in the files, makes the
   files durable with one `syncfs` (or, where that is missing, fsyncs of the touched files and
   folders) and deletes the old segments. After it, the folder alone is exactly what was
   acknowledged: a legacy process (or a snapshot, restore, adopt or export) can read it. Once a
   sync of this journal has failed, no later checkpoint of the same open journal deletes segments
   (the kernel marks pages whose write-back failed clean, so a later sync can succeed without
   them); the next open replays them.
5. Opening replays every complete record after the last checkpoint (idempotent: records hold full
   file contents), ignores and counts a torn tail (never acknowledged), then checkpoints. A damaged
   record that was acknowledged stops everything (`JournalCorruptError`, see journal_log.py): a
   partial replay could roll keys back behind files a later record already wrote, and skipping
   the record would leave an acknowledged batch missing; both are the mixed state the journal
   exists to prevent. The operator restores a snapshot or `set_aside`s the journal.

One journal per session, not one per auth root (measured in docs/performance.md, "Journal"): the
session lock already guarantees one writer process per session, so the journal needs no
cross-session coordination; checkpoints, recovery and corruption stay local to one session; and
the CLI can checkpoint a stopped session while the bridge keeps running others.

Who must checkpoint first (the folder alone is then exact): session stop (`close`), snapshot,
restore, adopt, export/rollback to legacy. Readers that need one consistent cut of a live folder
use `frozen_session` (checkpoint, then no file changes until the block ends).

The store's rules stay in `AuthStore`, above this seam: the backend has no way to delete a file
(a `trash` name is moved, never unlinked), refuses to trash creds.json, and knows nothing of
downgrades or snapshots.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import msgspec

from bridge.errors import StoreError
from bridge.metrics import STORE_WRITE_SECONDS
from bridge.store import durable
from bridge.store.journal_apply import Target, apply_record
from bridge.store.journal_log import (
    JournalBusyError,
    JournalCorruptError,
    JournalLog,
    LogStats,
    list_segments,
    take_lock,
)
from bridge.store.journal_record import Record, decode_payload, encode_payload, make_record
from bridge.store.layout import CREDS_FILE, BridgeDirs, is_bridge_private, validate_session_id
from bridge.store.pool import Later, LazyPool

log = logging.getLogger(__name__)

__all__ = [
    "AuthBackend",
    "Journal",
    "JournalBackend",
    "JournalBusyError",
    "JournalCorruptError",
    "Materialise",
    "ReplayReport",
    "Staged",
    "Target",
    "checkpoint_session",
    "frozen_session",
    "has_records",
    "is_open_here",
    "journal_folder",
    "open_session_backend",
    "set_aside",
]

#: A checkpoint runs on its own once the current segment holds this many bytes. Until then every
#: batch is on disk twice (journal + files), so this bounds the extra space per session: 1000
#: busy sessions hold at most ~1 GiB of journal; each checkpoint costs one syncfs.
CHECKPOINT_BYTES: Final = 1024 * 1024
#: Pause before retrying a materialisation that failed (disk full, EIO).
RETRY_SECONDS: Final = 1.0
APPLY_WORKERS: Final = 4
#: Acknowledged records of one journal that may wait for their files (BACKGROUND): beyond it the
#: committer writes them itself, so a disk slower than the commits cannot grow memory or the lag.
MAX_LAG: Final = 64
#: BACKGROUND: how long (s) a journal's drain waits after the first record that needs files, so
#: the records committed meanwhile are written together and a file that several of them rewrite
#: (a contact's session record, once per message) is written once, with the newest bytes.
COALESCE: Final = 0.05


class Materialise(enum.Enum):
    """When the legacy files of an acknowledged batch are written.

    INLINE: by the committing thread right after the fdatasync, before `commit` returns (the
    folder is current whenever no commit is running: what `commit` does by default, for the CLI
    and other synchronous callers). BACKGROUND: by a worker after the batch was acknowledged, so
    the file writes (temp + rename, the larger cost: docs/performance.md) leave the
    acknowledgement's critical path; readers of the journal see every acknowledged batch
    at once (the overlay), readers of the raw files a moment later, and every path that needs the
    folder alone checkpoints first. Two exceptions keep it bounded and keep creds.json current:
    a batch that writes creds.json, and any batch committed while `MAX_LAG` records already wait
    for their files, are written inline. DEFERRED: only at `flush`/`checkpoint` (tests).
    """

    INLINE = "inline"
    BACKGROUND = "background"
    DEFERRED = "deferred"


class AuthBackend(Protocol):
    """Where one session's legacy files live. `AuthStore` keeps the rules; the backend keeps bytes.

    Names are legacy file names (`creds.json`, `<type>-<id>.json`), values their exact bytes.
    """

    def read(self, names: Sequence[str]) -> dict[str, bytes | None]:
        """The newest acknowledged bytes of each name (None: absent or trashed)."""
        ...

    def list_names(self) -> list[str]:
        """Every name that currently has a value (bridge-private dot names excluded)."""
        ...

    def commit(self, writes: Mapping[str, bytes], trash: Sequence[str]) -> None:
        """Make one batch durable, all or nothing, before returning. `trash` names are kept, never deleted."""
        ...

    def checkpoint(self) -> None:
        """Make the legacy folder alone hold exactly what was acknowledged, durably."""
        ...

    def close(self) -> None:
        """Checkpoint and release the backend."""
        ...


class Staged(msgspec.Struct):
    """One batch between `Journal.stage` and `Journal.materialise`: its record, seq and start time."""

    journal: Journal
    record: Record
    seq: int
    started: float


class ReplayReport(msgspec.Struct):
    """What opening a journal did: records replayed, torn tail records ignored."""

    replayed: int = 0
    torn_records: int = 0
    torn_bytes: int = 0


_POOL = LazyPool(APPLY_WORKERS, "journal-apply")
_LATER = Later(_POOL, "journal-coalesce")


def _superseded(run: Sequence[Record]) -> list[set[str]]:
    """For each record of a run (in seq order), the names whose write a later record of the run
    overwrites with no trash of that name in between: writing them would only be undone."""
    skips: list[set[str]] = []
    later: set[tuple[str, str]] = set()
    for record in reversed(run):
        for name in record.trash:  # a record's trash follows its writes (apply_record)
            later.discard((record.session, name))
        skips.append({name for name in record.writes if (record.session, name) in later})
        later.update((record.session, name) for name in record.writes)
    skips.reverse()
    return skips


class Journal:
    """One journal folder and the sessions whose batches it holds (see module docstring).

    `resolve(session_id)` says where a session's records land; it is used for replay and for
    sessions that were not attached with `backend()`. Raises `JournalCorruptError`,
    `JournalBusyError` or `StoreError` when the journal cannot be opened.
    """

    def __init__(
        self,
        folder: Path,
        resolve: Callable[[str], Target],
        *,
        checkpoint_bytes: int = CHECKPOINT_BYTES,
        materialise: Materialise = Materialise.INLINE,
    ) -> None:
        self.folder = folder
        self._resolve = resolve
        self._checkpoint_bytes = checkpoint_bytes
        self._materialise = materialise
        self._state = threading.Condition(threading.Lock())
        self._apply_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._targets: dict[str, Target] = {}
        self._overlay: dict[tuple[str, str], tuple[int, bytes | None]] = {}
        self._pending: dict[int, Record] = {}
        self._touched: set[Path] = set()
        self._draining = False
        self._apply_error: StoreError | None = None
        self._retry: threading.Timer | None = None
        self._closed = False
        self._sync_failed = False
        self.log, recovery = JournalLog.open(folder)
        self._next_apply = self.log.last_seq + 1
        self.report = ReplayReport(torn_records=recovery.torn_records, torn_bytes=recovery.torn_bytes)
        try:
            self._replay([f.payload for f in recovery.frames])
        except BaseException:
            self.log.close()
            raise

    # ----- recovery -------------------------------------------------------------------------
    def _replay(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            try:
                record = decode_payload(payload)
            except msgspec.DecodeError as exc:
                raise JournalCorruptError(
                    f"a journal record in {self.folder} has a valid checksum but does not decode ({exc}); "
                    "nothing after it was replayed"
                ) from exc
            target = self._target(record.session)
            try:
                self._touched.update(apply_record(record, target))
            except OSError as exc:
                raise durable.explain_os_error(exc, target.folder, "replaying the journal into") from exc
            self.report.replayed += 1
        if payloads:
            log.info("journal %s: replayed %d batch(es)", self.folder, len(payloads))
            self.checkpoint()

    def _target(self, session_id: str) -> Target:
        target = self._targets.get(session_id)
        return target if target is not None else self._resolve(session_id)

    # ----- sessions -------------------------------------------------------------------------
    def backend(self, session_id: str, target: Target | None = None) -> JournalBackend:
        """The `AuthBackend` of one session whose batches go into this journal."""
        chosen = target if target is not None else self._resolve(session_id)
        with self._state:
            self._targets[session_id] = chosen
        return JournalBackend(self, session_id, chosen)

    # ----- write ----------------------------------------------------------------------------
    def commit(self, session_id: str, writes: Mapping[str, bytes], trash: Sequence[str]) -> int:
        """Append one batch durably (group commit) and queue it for the files; returns its seq.

        Observed once in `bridge_store_write_seconds` (with inline materialisation: files included).
        """
        staged = self.stage(session_id, writes, trash)
        if staged is None:
            return 0
        self.acknowledge(staged)
        self.materialise(staged)
        return staged.seq

    def stage(self, session_id: str, writes: Mapping[str, bytes], trash: Sequence[str]) -> Staged | None:
        """Step 1 of `commit`: append the batch's record without waiting for the disk (None: empty batch).

        Nothing about it is visible or acknowledged yet. Stage the batches of many sessions first,
        then `acknowledge` each and then `materialise` each (`bridge.store.group_commit`): the
        fdatasyncs overlap with no thread handoff per batch. Every staged batch must be acknowledged.
        """
        started = time.perf_counter()
        record = make_record(session_id, writes, trash)
        if not record.writes and not record.trash:
            return None
        seq = self.log.write(encode_payload(record))
        return Staged(journal=self, record=record, seq=seq, started=started)

    def acknowledge(self, staged: Staged) -> None:
        """Step 2: wait until the record is durable, then serve it to readers (the overlay) and queue its files.

        Raises StoreError when the journal failed (then the batch was never acknowledged).
        """
        self.log.wait_durable(staged.seq)
        session_id, record, seq = staged.record.session, staged.record, staged.seq
        with self._state:
            for name, data in record.writes.items():
                self._remember(session_id, name, seq, data)
            for name in record.trash:
                self._remember(session_id, name, seq, None)
            self._pending[seq] = record
            self._state.notify_all()

    def materialise(self, staged: Staged, *, later: bool = False) -> None:
        """Step 3: write the legacy files as `Materialise` says; never undoes the acknowledgement.

        `later=True` (the group commit of running sessions) asks for BACKGROUND where the journal
        would write inline.
        """
        mode = self._materialise
        if later and mode is Materialise.INLINE:
            mode = Materialise.BACKGROUND
        with self._state:
            if mode is Materialise.BACKGROUND and (CREDS_FILE in staged.record.writes or len(self._pending) > MAX_LAG):
                mode = Materialise.INLINE
            start = mode is Materialise.BACKGROUND and not self._draining
            if start:
                self._draining = True
        if start:
            _LATER.call_later(COALESCE, self._drain_in_background)
        elif mode is Materialise.INLINE:
            self._apply_inline(staged.seq)
        STORE_WRITE_SECONDS.observe(time.perf_counter() - staged.started)

    def _apply_inline(self, seq: int) -> None:
        """Write the files of every queued record up to `seq`; the batch is acknowledged whatever happens.

        A failure here (folder full, EIO) does not undo the acknowledgement: the record is durable
        in the journal and served from the overlay; a worker retries and `checkpoint` reports it.
        """
        try:
            self._apply_pending(until=seq)
        except StoreError as exc:
            log.warning("journal %s: writing the legacy files failed (%s); retrying in %.0f s", self.folder, exc,
                        RETRY_SECONDS)
            self._schedule_retry()
            return
        if self.log.bytes_since_rotation >= self._checkpoint_bytes:
            self._checkpoint_quietly()

    def _remember(self, session_id: str, name: str, seq: int, data: bytes | None) -> None:
        key = (session_id, name)
        current = self._overlay.get(key)
        if current is None or current[0] < seq:
            self._overlay[key] = (seq, data)

    # ----- read -----------------------------------------------------------------------------
    def read(self, session_id: str, folder: Path, names: Sequence[str]) -> dict[str, bytes | None]:
        """Overlay first, then the files (see module docstring)."""
        result: dict[str, bytes | None] = {}
        missing: list[str] = []
        with self._state:
            for name in names:
                hit = self._overlay.get((session_id, name))
                if hit is None:
                    missing.append(name)
                else:
                    result[name] = hit[1]
        for name in missing:
            path = folder / name
            try:
                result[name] = path.read_bytes()
            except FileNotFoundError:
                result[name] = None
            except OSError as exc:
                raise durable.explain_os_error(exc, path, "reading") from exc
        return result

    def list_names(self, session_id: str, folder: Path) -> list[str]:
        """Names with a value: the files, plus overlay writes, minus overlay trash."""
        try:
            on_disk = {n for n in os.listdir(folder) if not is_bridge_private(n)}
        except FileNotFoundError:
            on_disk = set()
        with self._state:
            for (sid, name), (_, data) in self._overlay.items():
                if sid != session_id:
                    continue
                if data is None:
                    on_disk.discard(name)
                else:
                    on_disk.add(name)
        return sorted(on_disk)

    # ----- materialise ----------------------------------------------------------------------
    def _drain_in_background(self) -> None:
        with self._state:
            if self._closed:  # close() checkpointed: nothing is left to write
                self._draining = False
                return
        try:
            self._apply_pending(until=None)
        except StoreError as exc:
            log.warning("journal %s: writing the legacy files failed (%s); retrying in %.0f s", self.folder, exc,
                        RETRY_SECONDS)
            self._schedule_retry()
            return
        except Exception:  # pragma: no cover - a bug; the overlay still serves every batch
            log.exception("journal %s: materialisation crashed", self.folder)
            self._schedule_retry()
            return
        if self.log.bytes_since_rotation >= self._checkpoint_bytes:
            self._checkpoint_quietly()

    def _checkpoint_quietly(self) -> None:
        try:
            self.checkpoint()
        except StoreError as exc:
            log.warning("journal %s: automatic checkpoint failed: %s", self.folder, exc)

    def _schedule_retry(self) -> None:
        with self._state:
            if self._closed or (self._retry is not None and self._retry.is_alive()):
                return
            self._retry = threading.Timer(RETRY_SECONDS, self._retry_now)
            self._retry.daemon = True
            self._retry.start()

    def _retry_now(self) -> None:
        with self._state:
            if self._closed or self._draining:
                return
            self._draining = True
        self._drain_in_background()

    def _apply_pending(self, until: int | None) -> None:
        """Apply queued records in seq order; with `until`, wait until every record <= until is applied.

        The records queued at that moment are applied as one run (`_superseded`); each is marked
        applied as soon as its own files are written, so a failure part-way leaves the rest queued.
        """
        with self._apply_lock:
            while True:
                with self._state:
                    item = self._pending.get(self._next_apply)
                    while item is None and until is not None and self._next_apply <= until:
                        if not self._state.wait(timeout=5.0):
                            raise StoreError(f"journal {self.folder}: record {self._next_apply} was never queued")
                        item = self._pending.get(self._next_apply)
                    if item is None:
                        self._draining = False
                        return
                    run: list[tuple[int, Record]] = []
                    seq = self._next_apply
                    while (queued := self._pending.get(seq)) is not None:
                        run.append((seq, queued))
                        seq += 1
                for (seq, record), skip in zip(run, _superseded([record for _, record in run]), strict=True):
                    self._apply_one(seq, record, skip)

    def _apply_one(self, seq: int, record: Record, skip: set[str]) -> None:
        session_id = record.session
        target = self._target(session_id)
        written = record if not skip else msgspec.structs.replace(
            record, writes={name: data for name, data in record.writes.items() if name not in skip})
        try:
            touched = apply_record(written, target)
        except OSError as exc:
            error = durable.explain_os_error(exc, target.folder, "writing journaled files into")
            with self._state:
                self._apply_error = error
                self._draining = False
            raise error from exc
        with self._state:
            del self._pending[seq]
            self._next_apply = seq + 1
            self._apply_error = None
            self._touched.update(touched)
            for name in (*record.writes, *record.trash):
                key = (session_id, name)
                hit = self._overlay.get(key)
                if hit is not None and hit[0] == seq:
                    del self._overlay[key]
            self._state.notify_all()

    def flush(self) -> None:
        """Write every acknowledged batch into the legacy files now (no fsync). Raises StoreError."""
        self._apply_pending(until=self.log.last_seq)

    # ----- checkpoint -----------------------------------------------------------------------
    def checkpoint(self) -> None:
        """See module docstring, step 4. Raises StoreError (then the journal keeps everything)."""
        with self._checkpoint_lock:
            last = self.log.rotate()
            self._apply_pending(until=last)
            with self._state:
                touched, self._touched = self._touched, set()
            try:
                _sync(touched, self.log)
            except OSError as exc:
                with self._state:
                    self._touched |= touched
                    self._sync_failed = True
                raise durable.explain_os_error(exc, self.folder, "checkpointing the journal of") from exc
            if self._sync_failed:
                # A failed write-back leaves its pages clean in the page cache, so a later sync
                # reports success without the data on disk. Keep every record until the next
                # open replays them into the files (idempotent) and syncs afresh.
                log.warning("journal %s: a sync failed earlier; its records are kept until the next open "
                            "replays them", self.folder)
                return
            self.log.drop_through(last)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Checkpoint, then keep every session's files still (at a batch boundary) until the block ends.

        Commits are still acknowledged meanwhile (journal + overlay); their files are written after.
        For readers of the raw folder that need one consistent cut: snapshots, backups, export.
        """
        self.checkpoint()
        with self._apply_lock:
            yield

    @property
    def stats(self) -> LogStats:
        """Records, fdatasyncs and bytes of the log since it was opened."""
        return self.log.stats

    def close(self) -> None:
        """Checkpoint and close. If the checkpoint fails the records stay on disk for the next open."""
        if self._closed:
            return
        try:
            self.checkpoint()
        finally:
            with self._state:
                self._closed = True
                if self._retry is not None:
                    self._retry.cancel()
            self.log.close()


def _sync(paths: set[Path], journal_log: JournalLog) -> None:
    """Make every path in `paths` (and its folder entry) durable: syncfs once per file system.

    On the journal's own file system through the journal's long-lived descriptor
    (`JournalLog.sync_file_system`): a fresh one misses a write-back error that another syncfs
    caller already saw; where that descriptor is missing or retired, file by file.
    """
    folders = {p.parent for p in paths}
    devices: dict[int, Path] = {}
    for folder in folders:
        try:
            devices.setdefault(os.stat(folder).st_dev, folder)
        except FileNotFoundError:
            continue
    shared = journal_log.file_system
    fallback = [
        folder
        for device, folder in devices.items()
        if not (
            journal_log.sync_file_system()
            if shared is not None and device == shared.device
            else durable.sync_file_system(folder)
        )
    ]
    if not fallback:
        return
    fallback_devices = {os.stat(f).st_dev for f in fallback}
    for path in paths:
        try:
            if os.stat(path.parent).st_dev in fallback_devices:
                durable.fsync_file(path)
        except FileNotFoundError:
            continue
    for folder in folders:
        if folder.exists() and os.stat(folder).st_dev in fallback_devices:
            durable.fsync_dir(folder)


class JournalBackend:
    """`AuthBackend` of one session on a `Journal` (what `AuthStore` sits on)."""

    def __init__(self, journal: Journal, session_id: str, target: Target, on_close: Callable[[], None] | None = None):
        self.journal = journal
        self.session_id = session_id
        self.target = target
        self._on_close = on_close

    def read(self, names: Sequence[str]) -> dict[str, bytes | None]:
        """See `AuthBackend.read`."""
        return self.journal.read(self.session_id, self.target.folder, names)

    def list_names(self) -> list[str]:
        """See `AuthBackend.list_names`."""
        return self.journal.list_names(self.session_id, self.target.folder)

    def commit(self, writes: Mapping[str, bytes], trash: Sequence[str]) -> None:
        """See `AuthBackend.commit`."""
        self.journal.commit(self.session_id, writes, trash)

    def stage(self, writes: Mapping[str, bytes], trash: Sequence[str]) -> Staged | None:
        """`commit` in steps, for a group of sessions: see `Journal.stage`."""
        return self.journal.stage(self.session_id, writes, trash)

    def checkpoint(self) -> None:
        """See `AuthBackend.checkpoint`."""
        self.journal.checkpoint()

    def close(self) -> None:
        """See `AuthBackend.close`."""
        if self._on_close is not None:
            self._on_close()
        else:
            self.journal.close()


# ----- one journal per session: where it lives, shared within a process -------------------------
_open: dict[Path, tuple[Journal, int]] = {}
_open_lock = threading.Lock()


def journal_folder(bridge_dir: Path, session_id: str) -> Path:
    """`.bridge/journal/<session>/`."""
    return BridgeDirs(bridge_dir).journal / validate_session_id(session_id)


def _single_session(session_id: str, target: Target) -> Callable[[str], Target]:
    def resolve(found: str) -> Target:
        if found != session_id:
            raise JournalCorruptError(f"the journal of session {session_id} holds a batch of session {found!r}")
        return target

    return resolve


def open_session_backend(
    bridge_dir: Path,
    session_id: str,
    folder: Path,
    trash_dir: Path,
    *,
    materialise: Materialise = Materialise.INLINE,
) -> JournalBackend:
    """The journal-backed `AuthBackend` of one session; shared by every caller in this process.

    Opening replays and checkpoints what a crash left. `materialise` applies when this call opens
    the journal (see `Materialise`). Raises JournalBusyError when another process holds it.
    """
    key = journal_folder(bridge_dir, session_id).resolve()
    target = Target(folder=folder, trash_dir=trash_dir)
    with _open_lock:
        entry = _open.get(key)
        if entry is None:
            journal = Journal(key, _single_session(session_id, target), materialise=materialise)
            _open[key] = (journal, 1)
        else:
            journal = entry[0]
            _open[key] = (journal, entry[1] + 1)
    return JournalBackend(journal, session_id, target, on_close=lambda: _release(key))


def _release(key: Path) -> None:
    with _open_lock:
        entry = _open.get(key)
        if entry is None:
            return
        journal, count = entry
        if count > 1:
            _open[key] = (journal, count - 1)
            return
        del _open[key]
    journal.close()


def checkpoint_session(bridge_dir: Path, session_id: str, folder: Path, trash_dir: Path) -> ReplayReport | None:
    """Make the session folder hold exactly what was acknowledged: the hook before stop, snapshot,
    adopt, restore and export.

    Uses the journal open in this process if there is one; otherwise opens it (replaying what a
    crash left), checkpoints and closes it. Returns None when the session never had a journal.
    Raises JournalBusyError when another process (a bridge running this session) holds it.
    """
    key = journal_folder(bridge_dir, session_id).resolve()
    with _open_lock:
        entry = _open.get(key)
    if entry is not None:
        entry[0].checkpoint()
        return entry[0].report
    if not list_segments(key):
        return None
    journal = Journal(key, _single_session(session_id, Target(folder=folder, trash_dir=trash_dir)))
    journal.close()
    return journal.report


@contextmanager
def frozen_session(bridge_dir: Path, session_id: str, folder: Path, trash_dir: Path) -> Iterator[ReplayReport | None]:
    """`checkpoint_session`, then keep the session's files still while the block reads them.

    With the journal open in this process: `Journal.frozen`. Otherwise the journal is opened
    (replaying what a crash left) and held for the block, so no bridge can start writing meanwhile.
    Yields None when the session never had a journal. Raises JournalBusyError when another process
    (a bridge running this session) holds it.
    """
    key = journal_folder(bridge_dir, session_id).resolve()
    with _open_lock:
        entry = _open.get(key)
    if entry is not None:
        with entry[0].frozen():
            yield entry[0].report
        return
    if not list_segments(key):
        yield None
        return
    journal = Journal(key, _single_session(session_id, Target(folder=folder, trash_dir=trash_dir)))
    try:
        with journal.frozen():
            yield journal.report
    finally:
        journal.close()


def has_records(bridge_dir: Path, session_id: str) -> bool:
    """True when the session's journal holds bytes a checkpoint has not yet dropped (a crash left
    them, or a bridge is running the session)."""
    return any(path.stat().st_size > 0 for _, path in list_segments(journal_folder(bridge_dir, session_id)))


def is_open_here(bridge_dir: Path, session_id: str) -> bool:
    """True when this process holds the session's journal (the session runs here)."""
    key = journal_folder(bridge_dir, session_id).resolve()
    with _open_lock:
        return key in _open


def set_aside(bridge_dir: Path, session_id: str) -> Path | None:
    """Move a session's journal to `.bridge/journal-set-aside/<session>-<UTC>/` (kept, never deleted).

    The operator's way past a `JournalCorruptError`: the session then opens with its files as they
    are. Refuses (JournalBusyError) while any process holds the journal. Returns the new place.
    """
    source = journal_folder(bridge_dir, session_id)
    if not source.is_dir():
        return None
    with _open_lock:
        if source.resolve() in _open:
            raise JournalBusyError(f"the journal of session {session_id} is open in this process; stop the session")
    lock_fd = take_lock(source)
    try:
        parking = BridgeDirs(bridge_dir).journal_set_aside
        durable.make_dirs(parking)
        target = parking / f"{session_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{time.time_ns() % 1_000_000:06d}"
        if not durable.move_unsynced(source, target):
            return None
        durable.fsync_dir(parking)
        durable.fsync_dir(source.parent)
    finally:
        os.close(lock_fd)
    log.warning("session %s: journal set aside at %s", session_id, target)
    return target
