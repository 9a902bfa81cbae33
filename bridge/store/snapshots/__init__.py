"""Content-addressed, immutable snapshots of session auth folders (restic's shape, tiny scale).

One operation per module: `objects` (content-addressed file bytes), `manifests` (what a snapshot
holds; lazy newest-first listing, `latest_good`), `create`, `verify`, `restore`, `prune`.
`Snapshots` (facade) binds them to one auth root; docs/storage.md describes the guarantees.
"""

from bridge.store.snapshots.facade import DedupStats, Snapshots
from bridge.store.snapshots.manifests import PRE_RESTORE, FileEntry, ManifestList, SnapshotManifest
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.prune import KeepPolicy, PruneReport
from bridge.store.snapshots.restore import RestoreOutcome, count_key_files
from bridge.store.snapshots.verify import Problem, VerifyReport
from bridge.store.trash import TrashReport, prune_trash

__all__ = [
    "PRE_RESTORE",
    "DedupStats",
    "FileEntry",
    "KeepPolicy",
    "ManifestList",
    "Problem",
    "PruneReport",
    "RestoreOutcome",
    "SnapshotManifest",
    "Snapshots",
    "TrashReport",
    "VerifyReport",
    "count_key_files",
    "prune_trash",
    "sha256_hex",
]
