"""Which session folders exist, and where: the root's folders plus the ones adopted elsewhere.

A session's auth folder is `AUTH_ROOT/<id>`, unless `python -m bridge adopt` recorded it in
place somewhere else: `AUTH_ROOT/.bridge/adopted.json`
(`{"version": 1, "sessions": {id: {"folder": abs_path, "adopted_at": t, "snapshot": id}}}`).
This module is the one place that reads (and writes) that record and walks the root; snapshots,
adopt, sessions, the monitor and the CLI ask here instead of each walking the root themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from bridge.errors import HostileNameError, StoreError
from bridge.store import durable
from bridge.store.layout import CREDS_FILE, BridgeDirs, validate_session_id

log = logging.getLogger(__name__)


class AdoptedFolder(msgspec.Struct):
    """Where an adopted session's folder lives (absolute), when, and its first snapshot."""

    folder: str
    adopted_at: float
    snapshot: str = ""


class AdoptedFile(msgspec.Struct):
    """The whole `.bridge/adopted.json`."""

    version: int = 1
    sessions: dict[str, AdoptedFolder] = msgspec.field(default_factory=dict)


class SessionFolder(msgspec.Struct, frozen=True):
    """One session folder: its id, its path, and whether it was adopted in place elsewhere."""

    session: str
    path: Path
    adopted: bool = False


def read_adopted(auth_root: Path) -> AdoptedFile:
    """The adopted-folders file (empty if absent); raises StoreError if it cannot be read or parsed."""
    path = BridgeDirs.of_auth_root(auth_root).adopted
    try:
        return msgspec.json.decode(path.read_bytes(), type=AdoptedFile)
    except FileNotFoundError:
        return AdoptedFile()
    except OSError as exc:
        raise durable.explain_os_error(exc, path, "reading") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreError(f"cannot read {path} ({exc}); fix it by hand or restore it from a backup") from exc


def write_adopted(auth_root: Path, data: AdoptedFile) -> None:
    """Durably replace `.bridge/adopted.json` (mode 0600)."""
    path = BridgeDirs.of_auth_root(auth_root).adopted
    durable.make_dirs(path.parent)
    durable.atomic_write(path, msgspec.json.format(msgspec.json.encode(data), indent=2))


def session_folder(auth_root: Path, session_id: str) -> Path:
    """A session's auth folder: the adopted external path if recorded, else `AUTH_ROOT/<id>`."""
    validate_session_id(session_id)
    entry = read_adopted(auth_root).sessions.get(session_id)
    return Path(entry.folder) if entry else Path(auth_root) / session_id


def root_folders(auth_root: Path, *, with_creds: bool = True) -> list[SessionFolder]:
    """`AUTH_ROOT/<id>` folders by name: not dot names, not symlinks, valid session ids, and
    (with `with_creds`) holding a creds.json. A missing root has none."""
    root = Path(auth_root)
    try:
        children = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise durable.explain_os_error(exc, root, "listing") from exc
    found: list[SessionFolder] = []
    for child in children:
        if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
            continue
        if with_creds and not (child / CREDS_FILE).is_file():
            continue
        try:
            found.append(SessionFolder(validate_session_id(child.name), child))
        except HostileNameError:
            log.debug("ignoring %s: not a valid session id", child)
    return found


def adopted_folders(auth_root: Path) -> list[SessionFolder]:
    """Folders adopted in place elsewhere, by session id (from `.bridge/adopted.json`)."""
    adopted = read_adopted(auth_root).sessions
    return [SessionFolder(sid, Path(entry.folder), adopted=True) for sid, entry in sorted(adopted.items())]


def session_folders(auth_root: Path, *, with_creds: bool = True) -> dict[str, SessionFolder]:
    """Every session folder by id: adopted ones (always listed) and the root's (see
    `root_folders`); an adopted record wins over a root folder of the same name."""
    found = {f.session: f for f in root_folders(auth_root, with_creds=with_creds)}
    found.update({f.session: f for f in adopted_folders(auth_root)})
    return dict(sorted(found.items()))
