"""`Snapshots`: the one object the rest of the bridge calls for snapshots (a facade).

Each operation lives in its own module of this package (restic's shape): objects, manifests,
create, verify, restore, prune. This class only binds them to one auth root.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from bridge.errors import SnapshotError
from bridge.store.creds_history import CredsHistory, linked_creds_of
from bridge.store.folders import session_folders
from bridge.store.identity import Identity
from bridge.store.layout import CREDS_FILE, validate_session_id
from bridge.store.snapshots import create as create_op
from bridge.store.snapshots import prune as prune_op
from bridge.store.snapshots import restore as restore_op
from bridge.store.snapshots import verify as verify_op
from bridge.store.snapshots.manifests import ManifestList, SnapshotManifest, latest_good
from bridge.store.snapshots.prune import KeepPolicy, PruneReport
from bridge.store.snapshots.repository import Repository
from bridge.store.snapshots.restore import RestoreOutcome
from bridge.store.snapshots.verify import VerifyReport

log = logging.getLogger(__name__)


class DedupStats(msgspec.Struct):
    """Logical bytes referenced by all manifests vs bytes actually stored as objects."""

    snapshots: int
    files_referenced: int
    logical_bytes: int
    objects: int
    stored_bytes: int

    @property
    def ratio(self) -> float:
        """logical / stored (1.0 = no sharing; 10.0 = ten references per stored byte)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0


class Snapshots:
    """The snapshot repository under `auth_root/.bridge/`; one instance may serve many sessions."""

    def __init__(self, auth_root: Path, *, clock: Callable[[], float] = time.time) -> None:
        """`clock` gives snapshot times (unix seconds); tests pass one to build a history."""
        self.repo = Repository(Path(auth_root), clock)
        self.auth_root = self.repo.auth_root
        self.bridge_dir = self.repo.dirs.root
        self.objects = self.repo.objects
        self.manifests = self.repo.manifests
        self.objects_dir = self.objects.root
        self.snapshots_dir = self.manifests.root

    # ----- objects and manifests -----------------------------------------------------------
    def object_path(self, sha: str) -> Path:
        """Where the object with this sha256 lives."""
        return self.objects.path(sha)

    def put_objects(self, blobs: Sequence[bytes]) -> list[str]:
        """Store each blob once; see `ObjectStore.put`."""
        return self.objects.put(blobs)

    def read_object(self, sha: str) -> bytes:
        """The bytes of an object, checked against its name; raises SnapshotError naming the path."""
        return self.objects.read(sha)

    def manifest_path(self, manifest: SnapshotManifest) -> Path:
        """Where a manifest is stored."""
        return self.manifests.path(manifest)

    def load_manifest(self, path: Path) -> SnapshotManifest:
        """Decode one manifest file; raises SnapshotError naming it if unreadable."""
        return self.manifests.load(path)

    # ----- which sessions, which snapshots --------------------------------------------------
    def sessions(self) -> list[str]:
        """Sessions that have at least one snapshot folder."""
        return self.manifests.sessions()

    def live_sessions(self) -> list[str]:
        """Sessions with a folder now: `AUTH_ROOT/<id>` holding creds.json, plus adopted folders."""
        return list(session_folders(self.auth_root))

    def session_folder(self, session_id: str) -> Path:
        """The session's auth folder: `auth_root/<id>`, or the external path it was adopted at."""
        return self.repo.folder(session_id)

    def list(self, session_id: str) -> ManifestList:
        """Every readable snapshot of a session, newest first (unreadable ones are logged)."""
        return self.manifests.all(session_id)

    def get(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """One snapshot by id (a unique prefix is accepted); raises SnapshotError if unknown."""
        return self.manifests.get(session_id, snapshot_id)

    def latest(self, session_id: str, *, registered: bool = False) -> SnapshotManifest | None:
        """The newest snapshot (with registered creds if asked), or None."""
        return next((m for m in self.manifests.newest_first(session_id) if m.registered or not registered), None)

    def latest_good(
        self, session_id: str, *, registered: bool = False, prefer_registered: bool = False
    ) -> SnapshotManifest | None:
        """The newest intact snapshot with valid creds, never a pre-restore one; see
        `manifests.latest_good` for `registered` and `prefer_registered`."""
        return latest_good(
            self.manifests, self.objects, session_id, registered=registered, prefer_registered=prefer_registered
        )

    def newest_intact_creds(self, session_id: str, identity: Identity) -> tuple[str, str] | None:
        """(creds text, where it came from) of the newest valid, registered creds of `identity`.

        Searches the session's creds history first (normally the creds last saved), then the
        creds of its snapshots newest first (objects checked against their hash). What the monitor
        puts back for creds-only damage, leaving every key file in place.
        """
        found = CredsHistory(self.bridge_dir, validate_session_id(session_id)).newest_intact(identity)
        if found is not None:
            return found[0], f"creds history {found[1]}"
        for manifest in self.manifests.newest_first(session_id):
            entry = manifest.entry(CREDS_FILE)
            if entry is None:
                continue
            try:
                data = self.objects.read(entry.sha256)
            except SnapshotError as exc:
                log.warning("%s", exc)
                continue
            if linked_creds_of(data, identity) is not None:
                return data.decode("utf-8"), f"snapshot {manifest.id} ({manifest.reason}, {manifest.created_iso})"
        return None

    # ----- operations ------------------------------------------------------------------------
    def hook_for(self, session_id: str) -> Callable[[str], SnapshotManifest]:
        """`create` bound to one session: what sessions pass as AuthStore's `before_creds_downgrade`."""
        validate_session_id(session_id)
        return functools.partial(self.create, session_id)

    def create(self, session_id: str, reason: str = "manual") -> SnapshotManifest:
        """Snapshot the session folder now; see `snapshots.create.create`."""
        return create_op.create(self.repo, session_id, reason)

    def create_if_due(self, session_id: str, max_age: float, reason: str) -> SnapshotManifest | None:
        """Snapshot only if the newest snapshot is older than `max_age` seconds (or there is none).

        For the scheduled snapshot (`BRIDGE_SNAPSHOT_INTERVAL`) and the one on creds change
        (`BRIDGE_SNAPSHOT_MIN_INTERVAL`): callers decide when to ask, this decides whether it is due.
        """
        return create_op.create_if_due(self.repo, session_id, max_age, reason)

    def verify(self, snapshot: SnapshotManifest | None = None, *, session_id: str | None = None) -> VerifyReport:
        """Re-hash every object of `snapshot`, of a session's snapshots, or of all; see `verify`."""
        return verify_op.verify(self.repo, snapshot, session_id=session_id)

    def restore(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        """Restore a snapshot into the (stopped) session's folder; returns the restored manifest."""
        return self.restore_detailed(session_id, snapshot_id).restored

    def restore_detailed(
        self, session_id: str, snapshot_id: str, *, refuse_fewer_keys: bool = False
    ) -> RestoreOutcome:
        """Restore and say how: pre-restore snapshot, replaced folder, key files before/after.

        See `snapshots.restore.restore` (including `refuse_fewer_keys`).
        """
        return restore_op.restore(self.repo, session_id, snapshot_id, refuse_fewer_keys=refuse_fewer_keys)

    def plan_prune(
        self, session_id: str, policy: KeepPolicy, *, force: bool = False
    ) -> tuple[ManifestList, ManifestList, ManifestList]:
        """(keep, remove, protected) for a session under `policy`; decides, deletes nothing."""
        return prune_op.plan_prune(self.manifests, session_id, policy, force=force)

    def prune(self, session_id: str, policy: KeepPolicy, force: bool = False, *, dry_run: bool = False) -> PruneReport:
        """Delete the snapshots `policy` does not keep, then unreferenced objects; see `prune`."""
        return prune_op.prune(self.repo, session_id, policy, force, dry_run=dry_run)

    def dedup_stats(self) -> DedupStats:
        """How much sharing the object store achieves across every snapshot of every session."""
        snapshots = files = logical = 0
        for path in self.manifests.files():
            try:
                manifest = self.manifests.load(path)
            except SnapshotError:
                continue
            snapshots += 1
            files += len(manifest.files)
            logical += manifest.total_bytes
        objects = stored = 0
        for obj in self.objects.paths():
            objects += 1
            stored += obj.stat().st_size
        return DedupStats(snapshots, files, logical, objects, stored)
