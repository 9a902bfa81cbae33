"""Is an auth folder healthy? A read-only look (`inspect_folder`) and a pure verdict (`diagnose`).

Kept apart from the watcher so every kind of damage is a plain unit test, and so the watcher's
only decisions are when to look and what to do about a finding. Nothing here writes a byte.

The verdict compares what is on disk now with the last healthy look at the same folder (the
baseline) and with whether any snapshot exists, because "creds.json is missing" is damage for a
folder that had creds and normal for a session that has not started yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bridge.errors import CredsCorruptError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.layout import CREDS_FILE, is_bridge_private


class CredsStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    INVALID = "invalid"


class Damage(StrEnum):
    """Incident kinds, also used as alert kinds (stable strings; operators grep for them)."""

    FOLDER_REMOVED = "folder_removed"
    CREDS_DELETED = "creds_deleted"
    CREDS_TRUNCATED = "creds_truncated"
    CREDS_INVALID = "creds_invalid"
    CREDS_UNREGISTERED = "creds_unregistered"
    KEYS_MASS_DELETED = "keys_mass_deleted"


@dataclass(frozen=True)
class FolderLook:
    """What one read-only look at a session folder found."""

    exists: bool
    creds: CredsStatus
    creds_size: int
    creds_sha256: str | None
    registered: bool
    key_files: frozenset[str]
    problem: str = ""

    @property
    def healthy(self) -> bool:
        return self.exists and self.creds is CredsStatus.OK


@dataclass(frozen=True)
class Finding:
    """Damage found in a folder, with a sentence for the operator."""

    damage: Damage
    detail: str
    wants_registered: bool


def inspect_folder(folder: Path) -> FolderLook:
    """Look at `folder` without changing anything (safe on a folder another process is writing)."""
    if not folder.is_dir():
        return FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    keys: set[str] = set()
    try:
        names = [p.name for p in folder.iterdir()]
    except FileNotFoundError:
        return FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    for name in names:
        if name != CREDS_FILE and not is_bridge_private(name) and name.endswith(".json"):
            keys.add(name)
    try:
        data = (folder / CREDS_FILE).read_bytes()
    except FileNotFoundError:
        return FolderLook(True, CredsStatus.MISSING, 0, None, False, frozenset(keys))
    except OSError as exc:
        return FolderLook(True, CredsStatus.INVALID, 0, None, False, frozenset(keys), f"unreadable: {exc.strerror}")
    sha = hashlib.sha256(data).hexdigest()
    if not data.strip():
        return FolderLook(True, CredsStatus.EMPTY, len(data), sha, False, frozenset(keys), "creds.json is empty")
    try:
        creds = validate_creds_text(data.decode("utf-8"), source=str(folder / CREDS_FILE))
    except (CredsCorruptError, UnicodeDecodeError) as exc:
        return FolderLook(True, CredsStatus.INVALID, len(data), sha, False, frozenset(keys), str(exc))
    return FolderLook(True, CredsStatus.OK, len(data), sha, is_registered(creds), frozenset(keys))


def diagnose(
    look: FolderLook,
    baseline: FolderLook | None,
    *,
    has_snapshot: bool,
    snapshot_registered: bool,
    relinking: bool = False,
    mass_delete_min: int = 10,
) -> Finding | None:
    """The damage in `look`, or None when the folder is healthy or simply not set up yet.

    `baseline` is the last healthy look (None after a monitor restart); `has_snapshot` /
    `snapshot_registered` describe the session's snapshots. `relinking` says the bridge itself is
    linking a new device in this folder, where unregistered creds replacing registered ones (and
    old keys going to the trash) are expected and already snapshotted by the store.
    """
    was_registered = baseline.registered if baseline is not None else snapshot_registered
    had_creds = (baseline is not None and baseline.creds is CredsStatus.OK) or has_snapshot
    if not look.exists:
        if not had_creds:
            return None
        return Finding(Damage.FOLDER_REMOVED, "the auth folder was removed", was_registered)
    if look.creds is CredsStatus.MISSING:
        if not had_creds:
            return None
        return Finding(Damage.CREDS_DELETED, "creds.json was deleted", was_registered)
    if look.creds is CredsStatus.EMPTY:
        return Finding(Damage.CREDS_TRUNCATED, f"creds.json was truncated to {look.creds_size} bytes", was_registered)
    if look.creds is CredsStatus.INVALID:
        if baseline is not None and look.creds_size < baseline.creds_size:
            detail = f"creds.json was truncated ({baseline.creds_size} -> {look.creds_size} bytes): {look.problem}"
            return Finding(Damage.CREDS_TRUNCATED, detail, was_registered)
        return Finding(Damage.CREDS_INVALID, f"creds.json is not usable: {look.problem}", was_registered)
    if was_registered and not look.registered and not relinking:
        return Finding(
            Damage.CREDS_UNREGISTERED,
            "registered creds.json was replaced by unregistered creds (a fresh identity that needs a new QR)",
            True,
        )
    if baseline is not None and not relinking:
        gone = baseline.key_files - look.key_files
        if len(gone) >= mass_delete_min and len(gone) * 2 >= len(baseline.key_files):
            return Finding(
                Damage.KEYS_MASS_DELETED,
                f"{len(gone)} of {len(baseline.key_files)} key files vanished at once",
                was_registered,
            )
    return None
