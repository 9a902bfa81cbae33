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
import time
from pathlib import Path

import msgspec

from bridge.store import durable
from bridge.store.journal_record import Record
from bridge.store.layout import NAME_MAX


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
    touched: list[Path] = []
    for name, data in record.writes.items():
        path = target.folder / name
        durable.write_unsynced(path, data)
        touched.append(path)
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
