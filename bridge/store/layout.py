"""Where everything lives: the legacy folder layout, the `.bridge/` map, the session-id rule.

`BridgeDirs` is the one map of `AUTH_ROOT/.bridge/...`: every path the bridge keeps beside the
legacy folders is named here once. `SESSION_ID_PATTERN` is the one session-id rule (the API, the
IPC protocol and backups match against it).

Baileys 7.0.0-rc14 `useMultiFileAuthState` stores creds in `creds.json` and each Signal key in
`<type>-<id>.json`, after `fixFileName` replaced every `/` by `__` and every `:` by `-`. We use the
very same names so a legacy Node process can read a folder the bridge wrote and the bridge can adopt
a legacy folder without renaming anything.

That escaping is lossy (`a/b` and `a__b` share a file; so do `a:b` and `a-b`) and the name does not
mark where the type ends, so `parse_key_file_name` is best effort. What we add on top is refusal: a
type or id that could leave the folder, hide as a bridge-private name, or break the file system is a
`HostileNameError` instead of a file.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path
from typing import Final

from bridge.errors import HostileNameError

CREDS_FILE: Final = "creds.json"
BRIDGE_DIR_NAME: Final = ".bridge"
KEY_SUFFIX: Final = ".json"

#: Every key type the pinned Baileys reads or writes (SignalDataTypeMap in Types/Auth.d.ts).
KEY_TYPES: Final[frozenset[str]] = frozenset(
    {
        "pre-key",
        "session",
        "sender-key",
        "sender-key-memory",
        "app-state-sync-key",
        "app-state-sync-version",
        "lid-mapping",
        "device-list",
        "tctoken",
        "identity-key",
    }
)
# Longest first, so "sender-key-memory-x.json" is read as type sender-key-memory, not sender-key.
_TYPES_LONGEST_FIRST: Final = tuple(sorted(KEY_TYPES, key=len, reverse=True))

#: The one session-id rule, anchored (for validators); `SESSION_ID` is the same without anchors,
#: to embed in a larger pattern.
SESSION_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SESSION_ID: Final = SESSION_ID_PATTERN[1:-1]
_SESSION_ID_RE: Final = re.compile(SESSION_ID)
#: Linux NAME_MAX, in bytes of the encoded name.
NAME_MAX: Final = 255
#: Longest key id accepted (characters); real ids (JIDs, base64 key ids, numbers) are far shorter.
MAX_KEY_ID_CHARS: Final = 200


def validate_session_id(session_id: str) -> str:
    """Return `session_id` unchanged if it is safe as a folder name, else raise.

    A session id becomes a folder under the auth root and a folder under `.bridge/snapshots/`, so it
    must be one plain path component: letters, digits, `_`, `.`, `-`, not starting with a dot.
    """
    if not isinstance(session_id, str) or not _SESSION_ID_RE.fullmatch(session_id):
        raise HostileNameError(
            f"invalid session id {session_id!r}: use 1-64 characters from A-Z a-z 0-9 _ . - "
            "starting with a letter or digit"
        )
    return session_id


def escape_legacy(text: str) -> str:
    """Baileys' `fixFileName`: `/` becomes `__`, then `:` becomes `-`."""
    return text.replace("/", "__").replace(":", "-")


def key_file_name(key_type: str, key_id: str) -> str:
    """File name of one Signal key, exactly as legacy `useMultiFileAuthState` names it.

    Raises `HostileNameError` for an unknown type, an id with NUL, backslash or other control
    characters, an id longer than `MAX_KEY_ID_CHARS`, or a result that is not one safe file name.
    """
    if not isinstance(key_type, str) or key_type not in KEY_TYPES:
        raise HostileNameError(
            f"refused key type {key_type!r}: not one of {', '.join(sorted(KEY_TYPES))} "
            "(the Node runtime sent something Baileys never asks for)"
        )
    if not isinstance(key_id, str):
        raise HostileNameError(f"refused key id {key_id!r} for type {key_type}: ids are strings")
    return _checked_key_file_name(key_type, key_id)


@functools.lru_cache(maxsize=8192)
def _checked_key_file_name(key_type: str, key_id: str) -> str:
    """`key_file_name` past its type checks, cached: a session asks for the same few names on every
    message (its contacts' sessions, its sender keys), and the checks cost dozens of calls each."""
    if len(key_id) > MAX_KEY_ID_CHARS:
        raise HostileNameError(
            f"refused key id for type {key_type}: {len(key_id)} characters, limit {MAX_KEY_ID_CHARS}"
        )
    if any(ch == "\\" or unicodedata.category(ch) in ("Cc", "Cs") for ch in key_id):
        raise HostileNameError(
            f"refused key id {key_id!r} for type {key_type}: it contains NUL, a control character, "
            "a lone surrogate or a backslash"
        )
    name = escape_legacy(f"{key_type}-{key_id}{KEY_SUFFIX}")
    _check_single_component(name)
    return name


def _check_single_component(name: str) -> None:
    """The last line of defence: `name` must stay inside the folder it is joined to."""
    if (
        not name
        or "/" in name
        or "\x00" in name
        or name in (".", "..")
        or name.startswith(".")
        or len(name.encode("utf-8")) > NAME_MAX
    ):
        raise HostileNameError(f"refused file name {name!r}: not a single safe file name within {NAME_MAX} bytes")


def parse_key_file_name(name: str) -> tuple[str, str] | None:
    """Best-effort inverse of `key_file_name`: `(type, escaped_id)` or None if not a key file.

    The id is returned as it appears in the name (still escaped): the legacy escaping cannot tell a
    `/` from a `__` or a `:` from a `-`. What always holds is that
    `key_file_name(*parse_key_file_name(n)) == n` for every name this returns a result for; the id
    comes back unchanged when it had no `/` or `:` and the type/id split is unambiguous.
    """
    if name == CREDS_FILE or not name.endswith(KEY_SUFFIX) or name.startswith("."):
        return None
    stem = name[: -len(KEY_SUFFIX)]
    for key_type in _TYPES_LONGEST_FIRST:
        prefix = key_type + "-"
        if stem.startswith(prefix):
            key_id = stem[len(prefix) :]
            try:
                if key_file_name(key_type, key_id) != name:
                    return None
            except HostileNameError:
                return None
            return key_type, key_id
    return None


def is_bridge_private(name: str) -> bool:
    """True for names only the bridge creates: `.bridge/` and in-flight temp files (dot names).

    Legacy Baileys never writes a name starting with a dot, so such names are never session data.
    """
    return name.startswith(".")


class BridgeDirs:
    """The one map of `AUTH_ROOT/.bridge/`: what the bridge keeps beside the legacy folders.

    Only names paths; creates nothing. Per-session paths validate the session id first, so no
    caller can build a path that leaves its folder.
    """

    def __init__(self, bridge_dir: Path) -> None:
        self.root = Path(bridge_dir)

    @classmethod
    def of_auth_root(cls, auth_root: Path) -> BridgeDirs:
        """The map of `auth_root/.bridge`."""
        return cls(Path(auth_root) / BRIDGE_DIR_NAME)

    # ----- files -----------------------------------------------------------------------------
    @property
    def registry(self) -> Path:
        """`sessions.json`: the sessions registry (bridge/sessions/registry.py)."""
        return self.root / "sessions.json"

    @property
    def adopted(self) -> Path:
        """`adopted.json`: folders adopted in place outside the auth root (store/folders.py)."""
        return self.root / "adopted.json"

    @property
    def webhooks(self) -> Path:
        """`webhooks.json`: webhook configs with their secrets (mode 0600)."""
        return self.root / "webhooks.json"

    @property
    def storage_probe(self) -> Path:
        """`storage-probe`: rewritten to learn whether the root takes durable writes again after a
        storage fault (bridge/sessions/storage_probe.py); its content means nothing."""
        return self.root / "storage-probe"

    # ----- folders ---------------------------------------------------------------------------
    @property
    def locks(self) -> Path:
        """`locks/`: `bridge.lock` (one bridge per root), `<session>.lock`, `repository.lock`."""
        return self.root / "locks"

    @property
    def objects(self) -> Path:
        """`objects/<sha[:2]>/<sha>`: snapshot file contents, content-addressed."""
        return self.root / "objects"

    @property
    def snapshots(self) -> Path:
        """`snapshots/<session>/<id>.json`: snapshot manifests."""
        return self.root / "snapshots"

    @property
    def staging(self) -> Path:
        """`staging/`: folders being built by a restore."""
        return self.root / "staging"

    @property
    def replaced(self) -> Path:
        """`replaced/`: folders a restore swapped out (kept, never deleted)."""
        return self.root / "replaced"

    @property
    def trash(self) -> Path:
        """`trash/<session>/`: key files Baileys deleted."""
        return self.root / "trash"

    @property
    def creds_backups(self) -> Path:
        """`creds-backups/<session>/`: creds kept before a downgrade or a repair."""
        return self.root / "creds-backups"

    @property
    def creds_history(self) -> Path:
        """`creds-history/<session>/`: the last distinct creds texts of each session."""
        return self.root / "creds-history"

    @property
    def identity(self) -> Path:
        """`identity/<session>.json`: the account each session's folder must hold."""
        return self.root / "identity"

    @property
    def incidents(self) -> Path:
        """`incidents/`: the monitor's incident journal."""
        return self.root / "incidents"

    @property
    def journal(self) -> Path:
        """`journal/<session>/`: the auth write-ahead journal."""
        return self.root / "journal"

    @property
    def journal_set_aside(self) -> Path:
        """`journal-set-aside/<session>-<UTC>/`: damaged journals an operator set aside (kept)."""
        return self.root / "journal-set-aside"

    @property
    def backups(self) -> Path:
        """`backups/`: default destination of `python -m bridge backup`."""
        return self.root / "backups"

    # ----- per session -----------------------------------------------------------------------
    def session_lock(self, session_id: str) -> Path:
        """`locks/<session>.lock`."""
        return self.locks / f"{validate_session_id(session_id)}.lock"

    def session_snapshots(self, session_id: str) -> Path:
        """`snapshots/<session>/`."""
        return self.snapshots / validate_session_id(session_id)

    def session_trash(self, session_id: str) -> Path:
        """`trash/<session>/`."""
        return self.trash / validate_session_id(session_id)

    def session_creds_backups(self, session_id: str) -> Path:
        """`creds-backups/<session>/`."""
        return self.creds_backups / validate_session_id(session_id)

    def session_creds_history(self, session_id: str) -> Path:
        """`creds-history/<session>/`."""
        return self.creds_history / validate_session_id(session_id)

    def session_identity(self, session_id: str) -> Path:
        """`identity/<session>.json`."""
        return self.identity / f"{validate_session_id(session_id)}.json"
