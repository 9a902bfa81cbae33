"""Take a snapshot: read the folder, store its files as objects, then write the manifest.

Snapshots only read a session folder, and only inside `frozen_session`: the session's journal is
checkpointed first (the one open in this process when the session runs here), so a snapshot never
misses an acknowledged write, and no file changes while it is read. When another process (a
bridge running the session) holds the journal, the snapshot is refused (`journal_busy`): take it
through that bridge. A snapshot that fails part way (a full disk) takes back
the objects it wrote in that call (new ones that no manifest references) and raises the
classified error, so a failed snapshot consumes no space and cannot eat space an operator freed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bridge import metrics
from bridge.errors import ErrorCode, SnapshotError
from bridge.store import durable
from bridge.store.journal import frozen_session
from bridge.store.layout import is_bridge_private
from bridge.store.snapshots.manifests import SnapshotManifest, build_manifest
from bridge.store.snapshots.repository import Repository

log = logging.getLogger(__name__)


def create(repo: Repository, session_id: str, reason: str = "manual") -> SnapshotManifest:
    """Snapshot the session folder now; returns the stored manifest.

    Every regular top-level file except bridge-private dot names is captured. Raises
    SnapshotError if the folder is missing or unreadable, JournalBusyError while another process
    holds the session's journal, the classified StoreError when the storage fails (after taking
    back what this call wrote).
    """
    folder = repo.folder(session_id)
    if not folder.is_dir():
        raise SnapshotError(
            f"cannot snapshot session {session_id!r}: {folder} is not a folder; restore it with `restore`",
            code=ErrorCode.SESSION_FOLDER_MISSING,
        )
    fresh: list[str] = []
    try:
        with repo.shared_lock():
            with frozen_session(repo.dirs.root, session_id, folder, repo.dirs.session_trash(session_id)):
                contents = _read_folder(folder, session_id)
            shas = repo.objects.put(list(contents.values()), fresh=fresh)
            snap_id, created = repo.manifests.new_id(session_id, repo.clock())
            manifest = build_manifest(session_id, snap_id, created, reason, contents, shas, str(folder))
            repo.manifests.write(manifest)
    except BaseException:
        if fresh:
            _take_back(repo, fresh)
        raise
    metrics.SNAPSHOTS_TOTAL.labels(reason=reason).inc()
    metrics.SNAPSHOT_LAST_TIMESTAMP.labels(session=session_id).set(created)
    log.info("snapshot %s of %s (%s): %d files", snap_id, session_id, reason, len(manifest.files))
    return manifest


def create_if_due(repo: Repository, session_id: str, max_age: float, reason: str) -> SnapshotManifest | None:
    """Snapshot only if the newest snapshot is older than `max_age` seconds (or there is none)."""
    newest = next(repo.manifests.newest_first(session_id), None)
    if newest is not None and repo.clock() - newest.created_at < max_age:
        return None
    return create(repo, session_id, reason=reason)


def _read_folder(folder: Path, session_id: str) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    with durable.store_errors(folder, "reading for a snapshot", error_type=SnapshotError):
        for path in sorted(folder.iterdir()):
            if is_bridge_private(path.name):
                continue
            if not path.is_file() or path.is_symlink():
                log.warning("snapshot of %s skips %s: not a regular file", session_id, path)
                continue
            contents[path.name] = path.read_bytes()
    return contents


def _take_back(repo: Repository, fresh: list[str]) -> None:
    """Remove the objects a failed snapshot wrote, unless a manifest references them by now.

    Under the exclusive lock, so a concurrent snapshot that reused one of them has either written
    its manifest (the object stays) or not started yet. Leaves everything when any manifest is
    unreadable. A failure here is logged: the snapshot's own error is the one to report.
    """
    try:
        with repo.exclusive_lock():
            referenced = repo.manifests.referenced()
            if referenced is None:
                return
            removed, _freed = repo.objects.remove(set(fresh) - referenced)
    except Exception as exc:
        log.error("could not remove the objects of a failed snapshot: %s", exc)
        return
    if removed:
        log.warning("removed %d object(s) a failed snapshot had written", removed)
