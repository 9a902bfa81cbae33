"""Objects: every snapshotted file's bytes, stored once under the sha256 that names them.

`.bridge/objects/<sha[:2]>/<sha>`, read-only (0444), never rewritten except when their bytes no
longer hash to their name (bit rot: the name says exactly what they must be). Identical files
across snapshots and sessions share one object. Objects are only ever deleted by `prune`
(unreferenced ones) and by a failed snapshot taking back the ones it had just written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from bridge.errors import SnapshotError
from bridge.store import durable
from bridge.store.layout import BridgeDirs

log = logging.getLogger(__name__)

ObjectState = Literal["ok", "missing", "corrupt"]


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`: the name of its object."""
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """The content-addressed object folder of one repository."""

    def __init__(self, dirs: BridgeDirs) -> None:
        self.root = dirs.objects

    def path(self, sha: str) -> Path:
        """Where the object with this sha256 lives."""
        return self.root / sha[:2] / sha

    def state(self, sha: str) -> ObjectState:
        """`ok`, `missing`, or `corrupt` (bytes that no longer hash to the name)."""
        path = self.path(sha)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise durable.explain_os_error(exc, path, "reading") from exc
        return "ok" if sha256_hex(existing) == sha else "corrupt"

    def put(self, blobs: Sequence[bytes], *, fresh: list[str] | None = None) -> list[str]:
        """Store each blob once (0444); return their sha256s in order. Durable when it returns.

        Healthy objects are reused; corrupt ones are rewritten from the good bytes. New objects
        are written and fsynced in parallel and each object folder is fsynced once (group commit),
        so a first snapshot of thousands of keys costs a few fsync rounds, not thousands. The
        shas of objects that did not exist before are appended to `fresh` before any is written,
        so a caller can take back what a failed call may have left.
        """
        shas = [sha256_hex(data) for data in blobs]
        todo: dict[Path, bytes] = {}
        for sha, data in zip(shas, blobs, strict=True):
            state = self.state(sha)
            if state == "ok":
                continue
            if state == "corrupt":
                log.warning("object %s was corrupt; rewriting it from a good copy", self.path(sha))
            elif fresh is not None:
                fresh.append(sha)
            todo[self.path(sha)] = data
        if todo:
            durable.make_dir_set(path.parent for path in todo)
            durable.write_files(todo, mode=0o444)
        return shas

    def read(self, sha: str) -> bytes:
        """The bytes of an object, checked against its name; raises SnapshotError naming the path."""
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"object {path} is missing; restore from another snapshot or a backup") from None
        except OSError as exc:
            raise durable.explain_os_error(exc, path, "reading", error_type=SnapshotError) from exc
        if sha256_hex(data) != sha:
            raise SnapshotError(f"object {path} is corrupt (sha256 mismatch); use another snapshot or a backup")
        return data

    def remove(self, shas: Iterable[str]) -> tuple[int, int]:
        """Delete these objects (the caller holds the exclusive repository lock and has checked no
        manifest references them); returns (objects removed, bytes freed)."""
        removed = freed = 0
        folders: set[Path] = set()
        for sha in sorted(set(shas)):
            path = self.path(sha)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if durable.remove(path, sync_dir=False):
                removed += 1
                freed += size
                folders.add(path.parent)
        durable.fsync_dirs(folders)
        return removed, freed

    def paths(self) -> Iterator[Path]:
        """Every object file, by folder then name."""
        with durable.store_errors(self.root, "listing"):
            if not self.root.is_dir():
                return
            subs = sorted(p for p in self.root.iterdir() if p.is_dir())
        for sub in subs:
            with durable.store_errors(sub, "listing"):
                found = sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
            yield from found
