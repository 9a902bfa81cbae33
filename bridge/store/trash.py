"""The trash: key files Baileys asked to delete are moved here, never unlinked, until pruned.

Why: a `keys.set` with null is how Baileys deletes a consumed pre-key, and also how a buggy or
hostile runtime could wipe a session's keys. Moving instead of unlinking makes every deletion
recoverable; only `prune_trash`, an explicit operator act, frees the space.

Layout: `.bridge/trash/<session>/<time_ns>-<name>` (`trash_name`), the stamp being the time of
the deletion, which `prune_trash` reads as the file's age.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import msgspec

from bridge.errors import ErrorCode, SnapshotError
from bridge.store import durable
from bridge.store.layout import CREDS_FILE, NAME_MAX, BridgeDirs


def trash_name(stamp: int, name: str) -> str:
    """`<time_ns>-<name>`, shortened with a hash when it would exceed NAME_MAX."""
    candidate = f"{stamp}-{name}"
    if len(candidate.encode("utf-8")) <= NAME_MAX:
        return candidate
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return f"{stamp}-{digest}-{name.encode('utf-8')[:180].decode('utf-8', 'ignore')}"


def move_to_trash(folder: Path, trash_dir: Path, names: list[str]) -> int:
    """Move the named files of `folder` into `trash_dir` (absent ones are skipped); return how many.

    The trash folder is fsynced; `folder` is not (the caller fsyncs it once for its whole batch).
    """
    present = [name for name in names if (folder / name).is_file()]
    if not present:
        return 0
    durable.make_dirs(trash_dir)
    stamp = time.time_ns()
    moved = sum(1 for name in present if durable.move_file(folder / name, trash_dir / trash_name(stamp, name)))
    durable.fsync_dirs([trash_dir])
    return moved


class TrashReport(msgspec.Struct):
    """What `prune_trash` removed (or would remove) and how many bytes that freed."""

    removed: list[str]
    kept: int
    bytes_freed: int
    dry_run: bool


def prune_trash(
    bridge_dir: Path, max_age_days: float, session_id: str | None = None, *, dry_run: bool = False
) -> TrashReport:
    """Delete trashed key files older than `max_age_days` (explicit operator act only).

    The age comes from the `<time_ns>-` stamp of the name (else the file's mtime). A file named
    like creds is never deleted.
    """
    if max_age_days < 0:
        raise SnapshotError("--older-than must be zero or more days", code=ErrorCode.BAD_POLICY)
    dirs = BridgeDirs(bridge_dir)
    cutoff = time.time() - max_age_days * 86400
    report = TrashReport(removed=[], kept=0, bytes_freed=0, dry_run=dry_run)
    with durable.store_errors(dirs.trash, "pruning the trash in"):
        if session_id is not None:
            folders = [dirs.session_trash(session_id)]
        elif dirs.trash.is_dir():
            folders = sorted(p for p in dirs.trash.iterdir() if p.is_dir())
        else:
            folders = []
        for folder in folders:
            if folder.is_dir():
                _prune_folder(folder, cutoff, report)
    return report


def _prune_folder(folder: Path, cutoff: float, report: TrashReport) -> None:
    removed = 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(CREDS_FILE):
            report.kept += 1
            continue
        stamp, _, _rest = path.name.partition("-")
        age_from = int(stamp) / 1e9 if stamp.isdigit() else path.stat().st_mtime
        if age_from >= cutoff:
            report.kept += 1
            continue
        report.bytes_freed += path.stat().st_size
        report.removed.append(str(path))
        if not report.dry_run:
            durable.remove(path, sync_dir=False)
            removed += 1
    if removed:
        durable.fsync_dirs([folder])
