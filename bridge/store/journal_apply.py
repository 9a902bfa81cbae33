"""Materialise one journal record into the legacy folder: what `useMultiFileAuthState` would see.

Each written name becomes its exact bytes via temp file + rename (`durable.write_unsynced`: no
fsync, the journal already holds the record durably; a checkpoint makes the files durable
together). Each trashed name is moved to `.bridge/trash/<session>/<time_ns>-<name>`, never unlinked.

Applying a record is idempotent, which is what makes replay safe: writing the same bytes again
changes nothing a reader can see, and trashing a name that is already gone does nothing. Records are
always applied in seq order, so replaying a run of records ends in the state the last one left.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import msgspec

from bridge.store import durable
from bridge.store.journal_record import Record
from bridge.store.layout import NAME_MAX

#: Records with at least this many files write them in parallel: creating a file on a busy ext4
#: waits for the file system's own journal, so overlapping the waits is what makes a batch fast.
PARALLEL_MIN_FILES: Final = 4
POOL_WORKERS: Final = 16

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="journal-files")
        return _pool


class Target(msgspec.Struct, frozen=True):
    """Where a session's records land: its legacy folder and its trash folder."""

    folder: Path
    trash_dir: Path


def trash_name(stamp: int, name: str) -> str:
    """`<time_ns>-<name>`, shortened with a hash when it would exceed NAME_MAX (as AuthStore names it)."""
    candidate = f"{stamp}-{name}"
    if len(candidate.encode("utf-8")) <= NAME_MAX:
        return candidate
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return f"{stamp}-{digest}-{name.encode('utf-8')[:180].decode('utf-8', 'ignore')}"


def apply_record(record: Record, target: Target) -> list[Path]:
    """Write and trash what `record` says; returns every path it changed. Raises OSError.

    On an error part of the record may be applied; applying it again completes it.
    """
    touched = [target.folder / name for name in record.writes]
    if len(touched) < PARALLEL_MIN_FILES:
        for path, data in zip(touched, record.writes.values(), strict=True):
            durable.write_unsynced(path, data)
    else:
        pool = _get_pool()
        items = zip(touched, record.writes.values(), strict=True)
        futures = [pool.submit(durable.write_unsynced, path, data) for path, data in items]
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
    if record.trash:
        stamp = time.time_ns()
        present = [name for name in record.trash if (target.folder / name).exists()]
        if present:
            durable.ensure_dir(target.trash_dir)
        for name in present:
            moved_to = target.trash_dir / trash_name(stamp, name)
            if durable.move_unsynced(target.folder / name, moved_to):
                touched.append(moved_to)
    return touched
