"""Which WhatsApp account a session folder holds, and which it is supposed to hold.

Why: two folders swapped by an operator (or a wrong `cp`) hold perfectly valid creds, so nothing
else notices; after a restart tenant A runs on B's account. Every session's identity is recorded
once under `.bridge/identity/<session>.json`, and whoever sees a folder that may have changed
under it (start, every monitor scan, restore) asks `IdentityBook.check`.

An `Identity` is the sha256 of `creds.signedIdentityKey.public` (made by Baileys'
`initAuthCreds()` and kept for the life of those creds, linked or not) plus the account's user JID
once linked. Two creds are the same identity when their keys match; a recorded JID that differs
from the one found is a mismatch too.

A legitimate identity change happens only when a session relinks (logged out, new creds, a new
QR or pairing code): whoever links it then calls `record`, which overwrites the old record.
Anything else that changes the identity of a folder is damage or a mix-up, and `check` says so
(with the session the found creds belong to, when they are another session's: swapped folders).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Final

import msgspec

from bridge.errors import ErrorCode, StoreError
from bridge.store import durable
from bridge.store.creds import account_jid, identity_key_bytes
from bridge.store.layout import validate_session_id

log = logging.getLogger(__name__)

IDENTITY_DIR: Final = "identity"
#: Hex characters of the sha256 kept as the identity key (64 bits: plenty to tell accounts apart).
KEY_HEX_CHARS: Final = 16


class Identity(msgspec.Struct, frozen=True):
    """One account's identity: `key` from the identity key pair, `jid` (no device) once linked."""

    key: str
    jid: str | None = None

    def same_account(self, other: Identity) -> bool:
        """Same identity key, and no two different JIDs (a JID appears only once linked)."""
        if self.key != other.key:
            return False
        return self.jid is None or other.jid is None or self.jid == other.jid

    def describe(self) -> str:
        """For messages: the JID when linked, else the key."""
        return f"{self.jid} (identity {self.key})" if self.jid else f"unlinked identity {self.key}"


class IdentityMismatch(msgspec.Struct, frozen=True):
    """A folder holds creds of another identity than the one recorded for its session.

    `owner` is the other session whose recorded identity the found creds match (the swapped
    folders case), None when they belong to no known session.
    """

    session: str
    expected: Identity
    found: Identity
    owner: str | None = None

    def describe(self) -> str:
        """One operator-grade sentence: what was found and what to do."""
        whose = (
            f"they are the creds of session {self.owner!r} (folders swapped or copied?)"
            if self.owner
            else "they belong to no session this bridge knows"
        )
        return (
            f"session {self.session!r} should hold {self.expected.describe()} but its folder holds "
            f"{self.found.describe()}: {whose}. The session was stopped and nothing was overwritten; "
            "put the right folder back (or relink the session if the change is intended)"
        )


class _Record(msgspec.Struct):
    """The file `.bridge/identity/<session>.json`."""

    session: str
    key: str
    jid: str | None
    recorded_at: float
    version: int = 1


def identity_of(creds: dict[str, Any]) -> Identity:
    """The identity of parsed creds; raises `CredsCorruptError` if they have no identity key."""
    key = hashlib.sha256(identity_key_bytes(creds)).hexdigest()[:KEY_HEX_CHARS]
    return Identity(key=key, jid=account_jid(creds))


class IdentityBook:
    """The recorded identity of every session, under `AUTH_ROOT/.bridge/identity/`."""

    def __init__(self, bridge_dir: Path) -> None:
        self.bridge_dir = Path(bridge_dir)
        self.folder = self.bridge_dir / IDENTITY_DIR

    def _path(self, session: str) -> Path:
        return self.folder / f"{validate_session_id(session)}.json"

    def expected(self, session: str) -> Identity | None:
        """The identity recorded for `session`, None if none was recorded yet.

        Raises `StoreError` when the record exists but cannot be read or parsed: an identity
        check must not silently pass because its evidence is damaged.
        """
        path = self._path(session)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise durable.explain_os_error(exc, path, "reading") from exc
        try:
            record = msgspec.json.decode(raw, type=_Record)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreError(
                f"identity record {path} is unreadable ({exc}); remove it only if you are sure which "
                f"account session {session!r} holds (it is recorded again on the next check)",
                code=ErrorCode.IDENTITY_UNREADABLE,
            ) from exc
        return Identity(key=record.key, jid=record.jid)

    def record(self, session: str, identity: Identity) -> None:
        """Durably record `identity` as the one `session` holds (overwrites: see module docstring).

        Recording what is already recorded writes nothing, so callers may record on every link.
        """
        path = self._path(session)
        try:
            if self.expected(session) == identity:
                return
        except StoreError as exc:
            if durable.is_storage_fault(exc):
                raise
        record = _Record(session=session, key=identity.key, jid=identity.jid, recorded_at=time.time())
        durable.make_dirs(self.folder)
        data = msgspec.json.encode(record)
        durable.atomic_write(path, data)
        log.info("session %s: recorded %s", session, identity.describe())

    def check(self, session: str, creds: dict[str, Any]) -> IdentityMismatch | None:
        """None when `creds` are the recorded identity of `session` (or nothing is recorded yet)."""
        expected = self.expected(session)
        if expected is None:
            return None
        found = identity_of(creds)
        if expected.same_account(found):
            return None
        owner = self.owner_of(found, excluding=session)
        return IdentityMismatch(session=session, expected=expected, found=found, owner=owner)

    def owner_of(self, identity: Identity, *, excluding: str | None = None) -> str | None:
        """The session whose recorded identity is `identity`, if any (first by name)."""
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise durable.explain_os_error(exc, self.folder, "listing") from exc
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            session = name[: -len(".json")]
            if session == excluding:
                continue
            try:
                recorded = self.expected(session)
            except StoreError as exc:
                log.warning("%s", exc)
                continue
            if recorded is not None and recorded.same_account(identity):
                return session
        return None
