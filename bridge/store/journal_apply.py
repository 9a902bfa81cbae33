"""Materialise one journal record into the legacy folder: what `useMultiFileAuthState` would see.

Each written name becomes its exact bytes, without fsync (the journal already holds the record
durably; a checkpoint makes the files durable together): creds.json by temp file + rename
(`durable.write_unsynced`: the monitor reads it from the live folder, so it is never seen torn),
key files in place like legacy's `writeFile` (`durable.overwrite_unsynced`, ~10x cheaper for a
file that exists). A key file torn by a crash is rewritten by replay, because its record stays in
the journal until a checkpoint has made the file durable; live readers get keys from the journal's
overlay, which holds the record until its files are complete; snapshots read inside `frozen`.
Each trashed name is moved to `.bridge/trash/<session>/<time_ns>-<name>`, never unlinked.

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
from bridge.store.layout import CREDS_FILE
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
        if name == CREDS_FILE:
            durable.write_unsynced(path, data)
        else:
            durable.overwrite_unsynced(path, data)
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
