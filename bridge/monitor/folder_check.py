"""Is an auth folder healthy? A read-only look (`inspect_folder`) and a pure verdict (`diagnose`).

Kept apart from the watcher so every kind of damage is a plain unit test, and so the watcher's
only decisions are when to look and what to do about a finding. Nothing here writes a byte.

The verdict compares what is on disk now with the last healthy look at the same folder (the
baseline), with the identity the folder is expected to hold, and with whether anything of the
session was ever saved, because "creds.json is missing" is damage for a folder that had creds and
normal for a session that has not started yet.
"""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bridge.errors import CredsCorruptError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.identity import Identity, identity_of
from bridge.store.layout import CREDS_FILE, is_bridge_private


class CredsStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    INVALID = "invalid"


class Damage(StrEnum):
    """Incident kinds, also used as alert kinds (stable strings; operators grep for them)."""

    FOLDER_REMOVED = "folder_removed"
    FOLDER_UNREADABLE = "folder_unreadable"
    CREDS_DELETED = "creds_deleted"
    CREDS_TRUNCATED = "creds_truncated"
    CREDS_INVALID = "creds_invalid"
    CREDS_UNREGISTERED = "creds_unregistered"
    CREDS_FOREIGN = "creds_foreign"
    FOLDERS_SWAPPED = "folders_swapped"
    KEYS_MASS_DELETED = "keys_mass_deleted"


CREDS_DAMAGE = frozenset({Damage.CREDS_DELETED, Damage.CREDS_TRUNCATED, Damage.CREDS_INVALID,
                          Damage.CREDS_UNREGISTERED})
"""Damage that a creds.json of the folder's own identity repairs (key files are not involved)."""


@dataclass(frozen=True)
class FolderLook:
    """What one read-only look at a session folder found.

    `unreadable` holds the OS error when the folder or its creds.json could not be read at all
    (permission denied, I/O error): then nothing else in the look means anything. `identity` is
    that of valid creds, linked (`registered`) or not. `prekeys` is how many pre-keys the creds say
    were generated for upload (Baileys' `firstUnuploadedPreKeyId - 1`).
    """

    exists: bool
    creds: CredsStatus
    creds_size: int
    creds_sha256: str | None
    registered: bool
    key_files: frozenset[str]
    problem: str = ""
    identity: Identity | None = None
    unreadable: str | None = None
    prekeys: int = 0

    @property
    def healthy(self) -> bool:
        return self.exists and self.unreadable is None and self.creds is CredsStatus.OK

    @property
    def holds_prekeys(self) -> bool:
        """The pre-keys the creds count are in the folder (their newest key file is), so a snapshot
        now holds what the server hands out to contacts."""
        return self.prekeys > 0 and prekey_file(self.prekeys) in self.key_files


def prekey_file(key_id: int) -> str:
    """The legacy file name of pre-key `key_id` (Baileys' useMultiFileAuthState)."""
    return f"pre-key-{key_id}.json"


def uploaded_prekeys(creds: dict[str, Any]) -> int:
    """How many pre-keys `creds` say were generated for upload (0 when not said)."""
    value = creds.get("firstUnuploadedPreKeyId")
    return value - 1 if isinstance(value, int) and not isinstance(value, bool) and value > 1 else 0


_UNREADABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR, errno.ELOOP, errno.ESTALE})


def _unreadable(exc: OSError, what: Path) -> str:
    return f"{what}: {exc.strerror or exc}"


def inspect_folder(folder: Path) -> FolderLook:
    """Look at `folder` without changing anything (safe on a folder another process is writing).

    Never raises for what is on disk: an error reading the folder is in `unreadable`.
    """
    gone = FolderLook(False, CredsStatus.MISSING, 0, None, False, frozenset())
    try:
        names = [p.name for p in folder.iterdir()]
    except FileNotFoundError:
        return gone
    except NotADirectoryError:
        return FolderLook(True, CredsStatus.MISSING, 0, None, False, frozenset(),
                          unreadable=f"{folder} is not a folder")
    except OSError as exc:
        return FolderLook(True, CredsStatus.MISSING, 0, None, False, frozenset(), unreadable=_unreadable(exc, folder))
    keys = frozenset(
        name for name in names if name != CREDS_FILE and not is_bridge_private(name) and name.endswith(".json")
    )
    path = folder / CREDS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return FolderLook(True, CredsStatus.MISSING, 0, None, False, keys)
    except OSError as exc:
        if exc.errno in _UNREADABLE_ERRNOS:
            return FolderLook(True, CredsStatus.MISSING, 0, None, False, keys, unreadable=_unreadable(exc, path))
        return FolderLook(True, CredsStatus.INVALID, 0, None, False, keys, f"unreadable: {exc.strerror}")
    sha = hashlib.sha256(data).hexdigest()
    if not data.strip():
        return FolderLook(True, CredsStatus.EMPTY, len(data), sha, False, keys, "creds.json is empty")
    try:
        creds = validate_creds_text(data.decode("utf-8"), source=str(path))
    except (CredsCorruptError, UnicodeDecodeError) as exc:
        return FolderLook(True, CredsStatus.INVALID, len(data), sha, False, keys, str(exc))
    return FolderLook(True, CredsStatus.OK, len(data), sha, is_registered(creds), keys, identity=identity_of(creds),
                      prekeys=uploaded_prekeys(creds))


@dataclass(frozen=True)
class Finding:
    """Damage found in a folder, with a sentence for the operator."""

    damage: Damage
    detail: str


def diagnose(
    look: FolderLook,
    baseline: FolderLook | None,
    *,
    expected: Identity | None,
    had_creds: bool,
    owner: str | None = None,
    relinking: bool = False,
    mass_delete_min: int = 10,
    deletion_going_on: bool = False,
) -> Finding | None:
    """The damage in `look`, or None when the folder is healthy or simply not set up yet.

    `baseline` is the last healthy look (None after a monitor restart); `expected` is the linked
    identity this folder belongs to (None if it never was linked, or a new link is allowed);
    `had_creds` says creds of this session were ever seen or saved (a snapshot or creds history
    exists); `owner` is the other session whose account the folder's creds are. `relinking` says the bridge
    itself is linking a new device in this folder, where unlinked creds replacing linked ones (and
    old keys going to the trash) are expected and were saved by the store first.
    `deletion_going_on` says a mass deletion was just repaired: then any key file vanishing is its
    continuation (putting back a pre-key Baileys consumed meanwhile is harmless).

    Foreign creds (another linked identity) are reported as `creds_foreign`; whether that is one
    half of a swap needs the other folder, which `plan_repair` is given.
    """
    if look.unreadable is not None:
        return Finding(Damage.FOLDER_UNREADABLE, f"the bridge cannot read {look.unreadable}")
    if not look.exists:
        return Finding(Damage.FOLDER_REMOVED, "the auth folder was removed") if had_creds else None
    if look.creds is CredsStatus.MISSING:
        return Finding(Damage.CREDS_DELETED, "creds.json was deleted") if had_creds else None
    if look.creds is CredsStatus.EMPTY:
        return Finding(Damage.CREDS_TRUNCATED, f"creds.json was truncated to {look.creds_size} bytes")
    if look.creds is CredsStatus.INVALID:
        if baseline is not None and look.creds_size < baseline.creds_size:
            detail = f"creds.json was truncated ({baseline.creds_size} -> {look.creds_size} bytes): {look.problem}"
            return Finding(Damage.CREDS_TRUNCATED, detail)
        return Finding(Damage.CREDS_INVALID, f"creds.json is not usable: {look.problem}")
    found = look.identity
    if look.registered and found is not None and owner is not None:
        return Finding(Damage.CREDS_FOREIGN, f"creds.json holds session {owner}'s account, {found.describe()}")
    if expected is not None and look.registered and found is not None and not expected.same_account(found):
        return Finding(Damage.CREDS_FOREIGN, f"creds.json holds another account, {found.describe()}, not this "
                                             f"session's {expected.describe()}")
    if expected is not None and not look.registered and not relinking:
        return Finding(
            Damage.CREDS_UNREGISTERED,
            "linked creds.json was replaced by unlinked creds (a fresh identity that needs a new QR)",
        )
    if baseline is not None and not relinking:
        gone = baseline.key_files - look.key_files
        if (gone and deletion_going_on) or (
            len(gone) >= mass_delete_min and len(gone) * 2 >= len(baseline.key_files)
        ):
            return Finding(
                Damage.KEYS_MASS_DELETED,
                f"{len(gone)} of {len(baseline.key_files)} key files vanished",
            )
    return None
