"""Manifests: the immutable record of one session folder at one moment, referencing objects only.

`.bridge/snapshots/<session>/<id>.json` (0444) lists every file with its size and sha256. Ids
sort by creation time (`<UTC time><microseconds>Z-<random>`), so the newest snapshots are found
from the file names alone: `newest_first` decodes lazily, because a long-running session keeps
hundreds of manifests and most questions are about the newest few.

Invariant (restic's): the objects a manifest names are written and fsynced before the manifest
itself, so a manifest on disk never names an object that was not stored.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bridge.errors import CredsCorruptError, ErrorCode, HostileNameError, SnapshotError
from bridge.store import durable
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.layout import CREDS_FILE, BridgeDirs, validate_session_id
from bridge.store.snapshots.objects import ObjectStore

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
#: The reason of the snapshot a restore takes of the folder it replaces: evidence, not a good state.
PRE_RESTORE = "pre-restore"


class FileEntry(msgspec.Struct, frozen=True):
    """One file of a snapshot: its name in the session folder, size in bytes and sha256 (hex)."""

    name: str
    size: int
    sha256: str


class SnapshotManifest(msgspec.Struct, frozen=True):
    """An immutable record of one session folder at one moment; references objects only."""

    id: str
    session: str
    created_at: float
    reason: str
    registered: bool
    files: list[FileEntry]
    source: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def created_iso(self) -> str:
        """Creation time as ISO 8601 UTC, for humans."""
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of every file in the snapshot."""
        return sum(f.size for f in self.files)

    def entry(self, name: str) -> FileEntry | None:
        """The entry of one file (e.g. `CREDS_FILE`), None if the snapshot has no such file."""
        return next((f for f in self.files if f.name == name), None)


def build_manifest(
    session_id: str, snap_id: str, created: float, reason: str, contents: Mapping[str, bytes],
    shas: Sequence[str], source: str,
) -> SnapshotManifest:
    """The manifest of `contents` (file name -> bytes, their objects' `shas` in the same order), for
    every snapshot store alike (files under `.bridge/snapshots/`, the cluster's tables)."""
    return SnapshotManifest(
        id=snap_id,
        session=session_id,
        created_at=created,
        reason=reason,
        registered=CREDS_FILE in contents and creds_registered(contents[CREDS_FILE]),
        files=[
            FileEntry(name=name, size=len(data), sha256=sha)
            for (name, data), sha in zip(contents.items(), shas, strict=True)
        ],
        source=source,
    )


def creds_registered(data: bytes) -> bool:
    """The creds bytes are valid and linked (`bridge.store.creds.is_registered`); False when unreadable."""
    try:
        return is_registered(validate_creds_text(data.decode("utf-8")))
    except (CredsCorruptError, UnicodeDecodeError):
        return False


def references(manifests: Sequence[SnapshotManifest]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Which files (`session/snapshot:name`) refer to each object, and each object's size: what a
    verify checks every object against."""
    refs: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for manifest in manifests:
        for entry in manifest.files:
            refs.setdefault(entry.sha256, []).append(f"{manifest.session}/{manifest.id}:{entry.name}")
            sizes[entry.sha256] = entry.size
    return refs, sizes


ManifestList = list[SnapshotManifest]
_DECODER = msgspec.json.Decoder(SnapshotManifest)


class ManifestStore:
    """The manifests of one repository, by session."""

    def __init__(self, dirs: BridgeDirs) -> None:
        self.dirs = dirs
        self.root = dirs.snapshots

    def session_dir(self, session_id: str) -> Path:
        """`snapshots/<session>/` (the id is validated)."""
        return self.dirs.session_snapshots(session_id)

    def path(self, manifest: SnapshotManifest) -> Path:
        """Where a manifest is stored."""
        return self.session_dir(manifest.session) / f"{manifest.id}.json"

    def files(self, session_id: str | None = None) -> list[Path]:
        """Manifest files of one session (or of all), oldest first by name."""
        with durable.store_errors(self.root, "listing", error_type=SnapshotError):
            if session_id is not None:
                folders = [self.session_dir(session_id)]
            elif self.root.is_dir():
                folders = sorted(p for p in self.root.iterdir() if p.is_dir())
            else:
                folders = []
            found: list[Path] = []
            for folder in folders:
                if folder.is_dir():
                    found += sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        return found

    def load(self, path: Path) -> SnapshotManifest:
        """Decode one manifest file; raises SnapshotError naming it if unreadable."""
        try:
            return _DECODER.decode(path.read_bytes())
        except OSError as exc:
            raise durable.explain_os_error(exc, path, "reading", error_type=SnapshotError) from exc
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SnapshotError(f"manifest {path} is unreadable ({exc}); run `verify`") from exc

    def newest_first(self, session_id: str) -> Iterator[SnapshotManifest]:
        """A session's snapshots newest first, decoded lazily; unreadable ones are logged, skipped."""
        for path in reversed(self.files(session_id)):
            try:
                yield self.load(path)
            except SnapshotError as exc:
                log.warning("%s", exc)

    def all(self, session_id: str) -> ManifestList:
        """Every readable snapshot of a session, newest first by creation time."""
        found = list(self.newest_first(session_id))
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return found

    def get(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """One snapshot by id (a unique prefix is accepted); raises SnapshotError if unknown."""
        snaps = self.all(session_id)
        matches = [m for m in snaps if m.id == snapshot_id] or [m for m in snaps if m.id.startswith(snapshot_id)]
        if len(matches) != 1:
            what = "is ambiguous" if matches else "does not exist"
            raise SnapshotError(
                f"snapshot {snapshot_id!r} of session {session_id!r} {what}; list them with `snapshots {session_id}`",
                code=ErrorCode.SNAPSHOT_AMBIGUOUS if matches else ErrorCode.SNAPSHOT_NOT_FOUND,
            )
        return matches[0]

    def sessions(self) -> list[str]:
        """Sessions that have a snapshot folder."""
        found = []
        with durable.store_errors(self.root, "listing", error_type=SnapshotError):
            paths = sorted(self.root.iterdir()) if self.root.is_dir() else []
            for path in paths:
                if path.is_dir() and not path.name.startswith("."):
                    try:
                        found.append(validate_session_id(path.name))
                    except HostileNameError:
                        log.warning("ignoring %s: not a valid session id", path)
        return found

    def new_id(self, session_id: str, now: float) -> tuple[str, float]:
        """A time-sortable id strictly after the session's newest one, and its creation time."""
        newest = next(self.newest_first(session_id), None)
        if newest is not None and now <= newest.created_at:
            now = newest.created_at + 1e-6
        stamp = datetime.fromtimestamp(now, UTC)
        return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond:06d}Z-{secrets.token_hex(3)}", now

    def write(self, manifest: SnapshotManifest, data: bytes | None = None) -> Path:
        """Durably store a manifest (0444); its objects must be stored already.

        `data` is its exact encoded text when it comes from elsewhere (a backup being imported).
        """
        path = self.path(manifest)
        durable.make_dirs(path.parent)
        durable.atomic_write(path, msgspec.json.encode(manifest) if data is None else data, mode=0o444)
        return path

    def remove(self, session_id: str, manifests: ManifestList) -> None:
        """Delete manifests of one session (prune only), then fsync its folder once."""
        for manifest in manifests:
            durable.remove(self.path(manifest), sync_dir=False)
        if manifests:
            durable.fsync_dirs([self.session_dir(session_id)])

    def referenced(self) -> set[str] | None:
        """Every object sha some manifest references; None if any manifest is unreadable (then
        nobody may delete an object: its references are unknown)."""
        shas: set[str] = set()
        for path in self.files():
            try:
                shas.update(f.sha256 for f in self.load(path).files)
            except SnapshotError as exc:
                log.error("not removing any object: %s", exc)
                return None
        return shas


def good_creds(objects: ObjectStore, manifest: SnapshotManifest) -> dict[str, Any] | None:
    """The snapshot's creds if every object is intact and creds.json validates, else None."""
    creds: dict[str, Any] | None = None
    try:
        for entry in manifest.files:
            data = objects.read(entry.sha256)
            if entry.name == CREDS_FILE:
                creds = validate_creds_text(data.decode("utf-8"))
    except (SnapshotError, CredsCorruptError, UnicodeDecodeError):
        return None
    return creds


def latest_good(
    manifests: ManifestStore,
    objects: ObjectStore,
    session_id: str,
    *,
    registered: bool = False,
    prefer_registered: bool = False,
) -> SnapshotManifest | None:
    """The newest snapshot that verifies (every object intact) and holds valid creds.

    Pre-restore snapshots (evidence of the folder a restore replaced) are never chosen. With
    `registered`, only snapshots whose creds are linked count; with `prefer_registered`, the
    newest linked one wins and the newest good one of any kind is the fallback. Linked is judged
    from the creds themselves: manifests written before "registered" meant linked may say so wrongly.
    """
    fallback: SnapshotManifest | None = None
    for manifest in manifests.newest_first(session_id):
        if manifest.reason == PRE_RESTORE or (registered and not manifest.registered):
            continue
        if fallback is not None and not manifest.registered:
            continue
        creds = good_creds(objects, manifest)
        if creds is None:
            continue
        if is_registered(creds) or not (registered or prefer_registered):
            return manifest
        if fallback is None and not registered:
            fallback = manifest
    return fallback
