"""Adopt a legacy `useMultiFileAuthState` folder in place: the migration path from plain Node.

Why in place: copying or rewriting a live tenant's creds is exactly the kind of act that loses
them. Adopting only (1) checks the folder looks like a Baileys auth folder and is quiet (nothing
written in the last 60 s, so no legacy process still owns it), (2) records where it lives, and
(3) takes an initial snapshot. The folder's bytes are never written.

A folder that is not `AUTH_ROOT/<id>` is recorded in `AUTH_ROOT/.bridge/adopted.json`
(`{"version": 1, "sessions": {id: {"folder": abs_path, "adopted_at": t, "snapshot": id}}}`), which
`session_folder` and the sessions registry read. The registry itself (`.bridge/sessions.json`)
belongs to the sessions part: `registration_for` says, purely, what it must record.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from bridge.errors import CredsCorruptError, SnapshotError, StoreError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.durable import explain_os_error
from bridge.store.layout import BRIDGE_DIR_NAME, CREDS_FILE, is_bridge_private, parse_key_file_name, validate_session_id

if TYPE_CHECKING:
    from bridge.store.snapshots import Snapshots

ADOPTED_FILE = "adopted.json"
QUIET_SECONDS = 60.0


class AdoptedFolder(msgspec.Struct):
    """Where an adopted session's folder lives (absolute), when, and its first snapshot."""

    folder: str
    adopted_at: float
    snapshot: str = ""


class AdoptedFile(msgspec.Struct):
    """The whole `.bridge/adopted.json`."""

    version: int = 1
    sessions: dict[str, AdoptedFolder] = msgspec.field(default_factory=dict)


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


def _adopted_path(auth_root: Path) -> Path:
    return auth_root / BRIDGE_DIR_NAME / ADOPTED_FILE


def read_adopted(auth_root: Path) -> AdoptedFile:
    """The adopted-folders file (empty if absent); raises StoreError if it cannot be parsed."""
    path = _adopted_path(auth_root)
    try:
        return msgspec.json.decode(path.read_bytes(), type=AdoptedFile)
    except FileNotFoundError:
        return AdoptedFile()
    except OSError as exc:
        raise explain_os_error(exc, path, "reading") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreError(f"cannot read {path} ({exc}); fix it by hand or restore it from a backup") from exc


def session_folder(auth_root: Path, session_id: str) -> Path:
    """A session's auth folder: the adopted external path if recorded, else `AUTH_ROOT/<id>`."""
    validate_session_id(session_id)
    entry = read_adopted(auth_root).sessions.get(session_id)
    return Path(entry.folder) if entry else auth_root / session_id


def _write_adopted(auth_root: Path, data: AdoptedFile) -> None:
    from bridge.store.snapshots import write_file_once

    write_file_once(_adopted_path(auth_root), msgspec.json.format(msgspec.json.encode(data), indent=2), mode=0o600)


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
    if external:
        # Record first: the snapshot resolves the folder through this file.
        adopted.sessions[session_id] = AdoptedFolder(folder=str(folder), adopted_at=current)
        _write_adopted(auth_root, adopted)
    try:
        manifest = snapshots.create(session_id, reason="adopt")
    except BaseException:
        if external and previous is None:
            del adopted.sessions[session_id]
            _write_adopted(auth_root, adopted)
        raise
    if external:
        adopted.sessions[session_id] = AdoptedFolder(folder=str(folder), adopted_at=current, snapshot=manifest.id)
        _write_adopted(auth_root, adopted)
    return AdoptResult(session=session_id, folder=str(folder), external=external, snapshot=manifest.id, state=state)
