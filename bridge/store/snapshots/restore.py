"""Restore: build the snapshot's folder in staging, verify it, then swap it in with renames.

Only the snapshot's files end up in the folder. The folder it replaces is snapshotted first
(reason `pre-restore`) and moved under `.bridge/replaced/`, never deleted; snapshots and objects
are never touched. The caller guarantees the session is stopped; its journal is checkpointed first
(so the folder counted, snapshotted and replaced is what was acknowledged) and the restore is
refused (`journal_busy`) while another process holds it.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bridge.errors import CredsCorruptError, ErrorCode, SnapshotError
from bridge.store import durable
from bridge.store.creds import validate_creds_text
from bridge.store.identity import identity_of
from bridge.store.journal import checkpoint_session
from bridge.store.layout import BRIDGE_DIR_NAME, CREDS_FILE, is_bridge_private, parse_key_file_name
from bridge.store.snapshots.create import create
from bridge.store.snapshots.manifests import PRE_RESTORE, SnapshotManifest
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.repository import Repository

log = logging.getLogger(__name__)


class RestoreOutcome(msgspec.Struct):
    """Result of a restore: what was restored, the safety snapshot, where the old folder went."""

    restored: SnapshotManifest
    folder: str
    pre_restore_snapshot: str | None
    replaced_path: str | None
    #: Key files in the folder before the restore, and in it after (the snapshot's).
    keys_before: int = 0
    keys_after: int = 0


def count_key_files(folder: Path) -> int:
    """Signal key files (`<type>-<id>.json`) in a session folder; 0 when it is gone."""
    try:
        return sum(1 for name in os.listdir(folder) if parse_key_file_name(name) is not None)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise durable.explain_os_error(exc, folder, "listing") from exc


def restore(
    repo: Repository, session_id: str, snapshot_id: str, *, refuse_fewer_keys: bool = False
) -> RestoreOutcome:
    """Stage, verify, snapshot what is there now, then swap the staged folder in.

    Works when the session folder is gone entirely. Refuses (SnapshotError, nothing changed)
    when any object is missing or corrupt. The outcome counts key files before and after; with
    `refuse_fewer_keys`, a restore that would leave fewer key files than the folder holds is
    refused (`restore_loses_keys`, nothing changed) unless the folder's creds are valid creds of
    another identity (then its keys are not this account's anyway).
    """
    manifest = repo.manifests.get(session_id, snapshot_id)
    target = repo.folder(session_id)
    checkpoint_session(repo.dirs.root, session_id, target, repo.dirs.session_trash(session_id))
    keys_before = count_key_files(target)
    keys_after = sum(1 for f in manifest.files if parse_key_file_name(f.name) is not None)
    if refuse_fewer_keys and keys_after < keys_before and not _other_identity(repo, target, manifest):
        raise SnapshotError(
            f"restoring snapshot {manifest.id} of session {session_id!r} would leave {keys_after} key "
            f"files where {target} holds {keys_before} of the same account; nothing was changed. "
            "Repair creds.json alone, or restore this snapshot on purpose without the check",
            code=ErrorCode.RESTORE_LOSES_KEYS,
        )
    staging_root, replaced_root = _work_dirs(repo, target)
    staging = staging_root / f"{session_id}-{manifest.id}-{secrets.token_hex(3)}"
    try:
        durable.make_dirs(staging)
        with repo.shared_lock():
            _build_staging(repo, manifest, staging)
    except BaseException:
        durable.remove_tree(staging)
        raise
    pre_id: str | None = None
    with durable.store_errors(target, "restoring"):
        if target.is_dir() and any(not is_bridge_private(p.name) for p in target.iterdir()):
            pre_id = create(repo, session_id, reason=PRE_RESTORE).id
        replaced = _swap_in(staging, target, replaced_root / _replaced_name(session_id))
    log.warning("restored %s of %s into %s (previous folder: %s)", manifest.id, session_id, target, replaced or "none")
    return RestoreOutcome(
        restored=manifest,
        folder=str(target),
        pre_restore_snapshot=pre_id,
        replaced_path=str(replaced) if replaced else None,
        keys_before=keys_before,
        keys_after=keys_after,
    )


def _replaced_name(session_id: str) -> str:
    return f"{session_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _swap_in(staging: Path, target: Path, replaced: Path) -> Path | None:
    """Put `staging` at `target`; whatever was at `target` goes to `replaced` (returned)."""
    durable.make_dir_set([replaced.parent, target.parent])
    if not (target.exists() or target.is_symlink()):
        durable.rename(staging, target)
        return None
    if durable.exchange(staging, target):
        durable.rename(staging, replaced, sync_dirs=False)
    else:
        durable.rename(target, replaced, sync_dirs=False)
        durable.rename(staging, target, sync_dirs=False)
    durable.fsync_dirs([replaced.parent, target.parent, staging.parent])
    return replaced


def _other_identity(repo: Repository, folder: Path, manifest: SnapshotManifest) -> bool:
    """True when `folder` holds valid creds of another identity than the snapshot's creds."""
    entry = manifest.entry(CREDS_FILE)
    try:
        here = validate_creds_text((folder / CREDS_FILE).read_text(encoding="utf-8"))
        there = validate_creds_text(repo.objects.read(entry.sha256).decode("utf-8")) if entry else None
    except (OSError, UnicodeDecodeError, CredsCorruptError, SnapshotError):
        return False
    return there is not None and not identity_of(here).same_account(identity_of(there))


def _work_dirs(repo: Repository, target: Path) -> tuple[Path, Path]:
    """Staging and replaced folders on the same file system as `target`, so renames work.

    Normally `.bridge/staging` and `.bridge/replaced`; for an adopted folder on another file
    system, hidden siblings of the folder are used instead.
    """
    durable.make_dirs(repo.dirs.root)
    parent = target.parent if target.parent.exists() else repo.auth_root
    with durable.store_errors(parent, "restoring into"):
        same_device = os.stat(parent).st_dev == os.stat(repo.dirs.root).st_dev
    if same_device:
        return repo.dirs.staging, repo.dirs.replaced
    return parent / f"{BRIDGE_DIR_NAME}-staging", parent / f"{BRIDGE_DIR_NAME}-replaced"


def _build_staging(repo: Repository, manifest: SnapshotManifest, staging: Path) -> None:
    for entry in manifest.files:
        if "/" in entry.name or is_bridge_private(entry.name) or entry.name in ("", "..", "."):
            raise SnapshotError(f"snapshot {manifest.id} names an unsafe file {entry.name!r}; refusing")
    blobs = {staging / entry.name: repo.objects.read(entry.sha256) for entry in manifest.files}
    durable.write_files(blobs)
    with durable.store_errors(staging, "checking"):
        for entry in manifest.files:
            data = (staging / entry.name).read_bytes()
            if sha256_hex(data) != entry.sha256 or len(data) != entry.size:
                raise SnapshotError(f"staged {entry.name} does not match snapshot {manifest.id}; disk trouble?")
        staged = {p.name for p in staging.iterdir()}
    if staged != {f.name for f in manifest.files}:
        raise SnapshotError(f"staging folder {staging} does not hold exactly the snapshot's files")
