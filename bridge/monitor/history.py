"""Read-only questions the monitor asks of a session's saved past: which account did this
session hold, and what is the newest intact copy of it.

Every answer is judged from the creds themselves, not from a manifest's `registered` flag:
manifests written before "registered" meant linked call a pairing-code request's creds
registered, and restoring those is how issue 12 lost an identity. Nothing here writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from bridge.errors import BridgeError, CredsCorruptError
from bridge.monitor.repair_plan import CredsCandidate, SnapshotCandidate
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.identity import Identity, identity_of
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots import SnapshotManifest, Snapshots

log = logging.getLogger("bridge.monitor")

PRE_RESTORE = "pre-restore"
"""Reason of the snapshot a restore takes of what it replaces: evidence of damage, never a source."""


def newest_first(snapshots: Snapshots, session_id: str) -> Iterator[SnapshotManifest]:
    """A session's snapshots newest first, decoded lazily (the store's manifest listing); a
    repository that cannot be listed is logged and reads as empty here, the look goes on."""
    try:
        yield from snapshots.manifests.newest_first(session_id)
    except BridgeError as exc:
        log.warning("%s", exc)


def has_snapshots(snapshots: Snapshots, session_id: str) -> bool:
    """True when the session has any snapshot (so creds of it existed once)."""
    return next(newest_first(snapshots, session_id), None) is not None


def snapshot_creds(snapshots: Snapshots, manifest: SnapshotManifest) -> tuple[str, dict[str, Any]] | None:
    """The text and parsed creds of a snapshot, if its creds object is intact and valid."""
    entry = next((f for f in manifest.files if f.name == CREDS_FILE), None)
    if entry is None:
        return None
    try:
        text = snapshots.read_object(entry.sha256).decode("utf-8")
        return text, validate_creds_text(text, source=f"snapshot {manifest.id}")
    except (BridgeError, UnicodeDecodeError, CredsCorruptError):
        return None


def linked_identity(snapshots: Snapshots, session_id: str) -> Identity | None:
    """The account of the session's newest snapshot holding linked creds (what it is expected to hold)."""
    for manifest in newest_first(snapshots, session_id):
        if manifest.reason == PRE_RESTORE:
            continue
        found = snapshot_creds(snapshots, manifest)
        if found is not None and is_registered(found[1]):
            return identity_of(found[1])
    return None


def _of_identity(
    snapshots: Snapshots, session_id: str, identity: Identity | None
) -> Iterator[tuple[SnapshotManifest, str]]:
    """Snapshots newest first whose creds are intact and belong to `identity` (linked creds of that
    account; None: any creds), with the creds text; `pre-restore` snapshots (copies of damage) are
    never used."""
    for manifest in newest_first(snapshots, session_id):
        if manifest.reason == PRE_RESTORE:
            continue
        found = snapshot_creds(snapshots, manifest)
        if found is None:
            continue
        if identity is None or (is_registered(found[1]) and identity.same_account(identity_of(found[1]))):
            yield manifest, found[0]


def newest_creds(snapshots: Snapshots, session_id: str, identity: Identity | None) -> CredsCandidate | None:
    """The newest intact creds of `identity` held by any snapshot of the session."""
    for manifest, text in _of_identity(snapshots, session_id, identity):
        return CredsCandidate(text, f"snapshot {manifest.id} ({manifest.reason})")
    return None


def newest_intact_snapshot(
    snapshots: Snapshots, session_id: str, identity: Identity | None
) -> SnapshotCandidate | None:
    """The newest snapshot of `identity` whose every object is intact (re-hashed)."""
    for manifest, _ in _of_identity(snapshots, session_id, identity):
        if snapshots.verify(manifest).ok:
            keys = frozenset(f.name for f in manifest.files if f.name != CREDS_FILE)
            return SnapshotCandidate(manifest.id, manifest.created_at, keys)
    return None
