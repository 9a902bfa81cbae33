"""Materialise one journal record into the legacy folder: what `useMultiFileAuthState` would see.

Each written name becomes its exact bytes via temp file + rename (`durable.write_unsynced`: no
fsync, the journal already holds the record durably; a checkpoint makes the files durable
together). Each trashed name is moved to `.bridge/trash/<session>/<time_ns>-<name>`, never unlinked.

Applying a record is idempotent, which is what makes replay safe: writing the same bytes again
changes nothing a reader can see, and trashing a name that is already gone does nothing. Records are
always applied in seq order, so replaying a run of records ends in the state the last one left.
(Replaying "write X" then "trash X" can put one more copy of X into the trash; never fewer.)

Files are written one after the other: writing a record's files from a thread pool measured no
faster here (creating files in one folder is serialised by the file system; docs/performance.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from bridge.store import durable
from bridge.store.journal_record import Record
from bridge.store.trash import trash_name


class Target(msgspec.Struct, frozen=True):
    """Where a session's records land: its legacy folder and its trash folder."""

    folder: Path
    trash_dir: Path


def apply_record(record: Record, target: Target) -> list[Path]:
    """Write and trash what `record` says; returns every path it changed. Raises OSError.

    On an error part of the record may be applied; applying it again completes it.
    """
    touched: list[Path] = []
    for name, data in record.writes.items():
        path = target.folder / name
        durable.write_unsynced(path, data)
        touched.append(path)
    if record.trash:
        stamp = time.time_ns()
        present = [name for name in record.trash if (target.folder / name).exists()]
        if present:
            durable.make_dirs(target.trash_dir)
        for name in present:
            moved_to = target.trash_dir / trash_name(stamp, name)
            if durable.move_unsynced(target.folder / name, moved_to):
                touched.append(moved_to)
    return touched
