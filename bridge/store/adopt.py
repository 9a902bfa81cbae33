"""Adopt a legacy `useMultiFileAuthState` folder in place: the migration path from plain Node.

Why in place: copying or rewriting a live tenant's creds is exactly the kind of act that loses
them. Adopting only (1) checks the folder looks like a Baileys auth folder and is quiet (nothing
written in the last 60 s, so no legacy process still owns it), (2) records where it lives, and
(3) takes an initial snapshot. The folder's bytes are never written: a journal left under the same
session id (a bridge that crashed while running a session of that name) holds batches of some
other history of that folder, so replaying it could roll back what the legacy process wrote since;
it is set aside (`journal.set_aside`, kept) before the snapshot, and adopt refuses while another
process holds it. A session running in this process keeps its journal (adopting its own folder
again only snapshots it, through that journal).

A folder that is not `AUTH_ROOT/<id>` is recorded in `AUTH_ROOT/.bridge/adopted.json` through
`bridge.store.folders` (which everything else reads to find session folders). The registry itself
(`.bridge/sessions.json`) belongs to the sessions part: `registration_for` says, purely, what it
must record.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from bridge.errors import CredsCorruptError, SnapshotError, StoreError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.folders import AdoptedFile, AdoptedFolder, read_adopted, session_folder, write_adopted
from bridge.store.journal import has_records, is_open_here, set_aside
from bridge.store.layout import CREDS_FILE, is_bridge_private, parse_key_file_name, validate_session_id

if TYPE_CHECKING:
    from bridge.store.snapshots import Snapshots

__all__ = [
    "AdoptResult",
    "AdoptedFile",
    "AdoptedFolder",
    "FolderState",
    "Registration",
    "adopt",
    "inspect_folder",
    "read_adopted",
    "registration_for",
    "scan",
    "session_folder",
]

QUIET_SECONDS = 60.0


class FolderState(msgspec.Struct):
    """What `adopt --scan` reports about one candidate folder."""

    folder: str
    name: str
    creds_ok: bool
    registered: bool
    me: str | None
    keys: dict[str, int]
    files: int
    last_modified: float
    problem: str = ""


class Registration(msgspec.Struct, frozen=True):
    """What the session registry must record for an adopted folder (fields of its SessionRecord).

    `folder` is None when the folder already is `AUTH_ROOT/<id>`.
    """

    id: str
    folder: str | None
    login: str = "qr"
    desired_running: bool = False


class AdoptResult(msgspec.Struct):
    """Outcome of `adopt`: the folder, whether it is external, the snapshot taken, its state."""

    session: str
    folder: str
    external: bool
    snapshot: str
    state: FolderState
    #: Where a leftover journal of this session id was set aside (None: there was none).
    journal_set_aside: str | None = None


def inspect_folder(folder: Path) -> FolderState:
    """Read-only look at a candidate folder: creds validity, registration, key counts by type."""
    keys: dict[str, int] = {}
    files = 0
    newest = folder.stat().st_mtime
    for path in folder.iterdir():
        if is_bridge_private(path.name) or not path.is_file():
            continue
        files += 1
        newest = max(newest, path.stat().st_mtime)
        parsed = parse_key_file_name(path.name)
        if parsed is not None:
            keys[parsed[0]] = keys.get(parsed[0], 0) + 1
        elif path.name != CREDS_FILE:
            keys["other"] = keys.get("other", 0) + 1
    creds_ok = registered = False
    me: str | None = None
    problem = ""
    try:
        creds = validate_creds_text((folder / CREDS_FILE).read_text(encoding="utf-8"), source=str(folder / CREDS_FILE))
        creds_ok = True
        registered = is_registered(creds)
        me = creds["me"]["id"] if registered else None
    except FileNotFoundError:
        problem = "no creds.json"
    except (CredsCorruptError, UnicodeDecodeError, OSError) as exc:
        problem = str(exc)
    return FolderState(
        folder=str(folder.resolve()),
        name=folder.name,
        creds_ok=creds_ok,
        registered=registered,
        me=me,
        keys=dict(sorted(keys.items())),
        files=files,
        last_modified=newest,
        problem=problem,
    )


def scan(root: Path) -> list[FolderState]:
    """Candidate folders (holding creds.json) at `root` itself and one level below, by name."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root} is not a folder; pass the folder holding the legacy auth folders")
    found: list[FolderState] = []
    if (root / CREDS_FILE).is_file():
        found.append(inspect_folder(root))
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir() or child.is_symlink():
            continue
        if (child / CREDS_FILE).is_file():
            found.append(inspect_folder(child))
    return found


def registration_for(result: AdoptResult) -> Registration:
    """Pure: the registry entry the sessions part must create for an adopted folder."""
    return Registration(id=result.session, folder=result.folder if result.external else None)


def adopt(
    snapshots: Snapshots, legacy_folder: Path, session_id: str, *, force: bool = False, now: float | None = None
) -> AdoptResult:
    """Adopt `legacy_folder` as session `session_id` in place and take an initial snapshot.

    Refuses (SnapshotError, nothing recorded) when the folder is missing, has no valid creds.json,
    was modified in the last 60 s (unless `force`), when `AUTH_ROOT/<id>` is another folder, or
    when the session was already adopted from a different folder. Adopting the same folder again
    only takes a new snapshot.
    """
    validate_session_id(session_id)
    auth_root = snapshots.auth_root
    folder = Path(legacy_folder).resolve()
    if not folder.is_dir():
        raise SnapshotError(f"{legacy_folder} is not a folder; pass the legacy auth folder (with creds.json)")
    state = inspect_folder(folder)
    if not state.creds_ok:
        raise SnapshotError(
            f"{folder} has no usable creds ({state.problem}); adopt only folders with valid Baileys creds",
            code="adopt_refused",
        )
    current = time.time() if now is None else now
    age = current - state.last_modified
    if age < QUIET_SECONDS and not force:
        raise SnapshotError(
            f"{folder} was modified {max(age, 0):.0f} s ago: a legacy process may still own it. "
            f"Stop it, wait {QUIET_SECONDS:.0f} s, and retry (or pass --force if you are sure)",
            code="adopt_refused",
        )
    in_root = (auth_root / session_id).resolve()
    external = folder != in_root
    adopted = read_adopted(auth_root)
    previous = adopted.sessions.get(session_id)
    if external and (auth_root / session_id).exists():
        raise SnapshotError(
            f"session {session_id!r} already has a folder at {auth_root / session_id}; pick another session id",
            code="adopt_refused",
        )
    if previous is not None and Path(previous.folder).resolve() != folder:
        raise SnapshotError(
            f"session {session_id!r} was already adopted from {previous.folder}; pick another session id",
            code="adopt_refused",
        )
    parked = None
    if has_records(snapshots.bridge_dir, session_id) and not is_open_here(snapshots.bridge_dir, session_id):
        parked = set_aside(snapshots.bridge_dir, session_id)  # JournalBusyError: a bridge runs this id
    if external:
        # Record first: the snapshot resolves the folder through this file.
        adopted.sessions[session_id] = AdoptedFolder(folder=str(folder), adopted_at=current)
        write_adopted(auth_root, adopted)
    try:
        manifest = snapshots.create(session_id, reason="adopt")
    except BaseException:
        if external and previous is None:
            del adopted.sessions[session_id]
            write_adopted(auth_root, adopted)
        raise
    if external:
        adopted.sessions[session_id] = AdoptedFolder(folder=str(folder), adopted_at=current, snapshot=manifest.id)
        write_adopted(auth_root, adopted)
    return AdoptResult(
        session=session_id, folder=str(folder), external=external, snapshot=manifest.id, state=state,
        journal_set_aside=None if parked is None else str(parked),
    )
