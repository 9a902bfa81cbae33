"""The snapshot repository under `AUTH_ROOT/.bridge/`: what every snapshot operation works on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.store.folders import session_folder
from bridge.store.layout import BridgeDirs
from bridge.store.lock import RepositoryLock
from bridge.store.snapshots.manifests import ManifestStore
from bridge.store.snapshots.objects import ObjectStore


@dataclass(frozen=True)
class Repository:
    """Objects and manifests of one auth root, the clock that dates snapshots, and its locks.

    Writers of objects and manifests hold the shared repository lock; deleting objects (prune, a
    failed snapshot taking back its own) holds the exclusive one.
    """

    auth_root: Path
    clock: Callable[[], float] = time.time
    dirs: BridgeDirs = field(init=False)
    objects: ObjectStore = field(init=False)
    manifests: ManifestStore = field(init=False)

    def __post_init__(self) -> None:
        dirs = BridgeDirs.of_auth_root(self.auth_root)
        object.__setattr__(self, "dirs", dirs)
        object.__setattr__(self, "objects", ObjectStore(dirs))
        object.__setattr__(self, "manifests", ManifestStore(dirs))

    def folder(self, session_id: str) -> Path:
        """The session's auth folder: `auth_root/<id>`, or the external path it was adopted at."""
        return session_folder(self.auth_root, session_id)

    def shared_lock(self, timeout: float = 60.0) -> RepositoryLock:
        """Held while writing objects and manifests, or reading objects that must not vanish."""
        return RepositoryLock(self.dirs.root, exclusive=False, timeout=timeout)

    def exclusive_lock(self, timeout: float = 60.0) -> RepositoryLock:
        """Held while deleting objects."""
        return RepositoryLock(self.dirs.root, exclusive=True, timeout=timeout)
