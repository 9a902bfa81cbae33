"""Verify: re-hash every object some snapshots reference and name each missing or corrupt one."""

from __future__ import annotations

import msgspec

from bridge.errors import SnapshotError
from bridge.store.snapshots.manifests import SnapshotManifest, references
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.repository import Repository


class Problem(msgspec.Struct, frozen=True):
    """One thing `verify` found wrong: `kind` is missing, corrupt or bad_manifest."""

    kind: str
    path: str
    detail: str
    snapshots: list[str] = []


class VerifyReport(msgspec.Struct):
    """What `verify` checked and every problem found (exact paths)."""

    snapshots_checked: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = []

    @property
    def ok(self) -> bool:
        """True when nothing is missing or corrupt."""
        return not self.problems


def verify(
    repo: Repository, snapshot: SnapshotManifest | None = None, *, session_id: str | None = None
) -> VerifyReport:
    """Re-hash every object referenced by `snapshot`, by a session's snapshots, or by all.

    Each missing or corrupt object is reported once with its exact path and the snapshots that
    reference it; unreadable manifests are reported too. Holds the shared repository lock, so
    a concurrent prune cannot make objects look missing.
    """
    report = VerifyReport(problems=[])
    with repo.shared_lock():
        manifests: list[SnapshotManifest] = []
        if snapshot is not None:
            manifests = [snapshot]
        else:
            for path in repo.manifests.files(session_id):
                try:
                    manifests.append(repo.manifests.load(path))
                except SnapshotError as exc:
                    report.problems.append(Problem(kind="bad_manifest", path=str(path), detail=str(exc)))
        refs, sizes = references(manifests)
        report.snapshots_checked = len(manifests)
        for sha in sorted(refs):
            _check_object(repo, sha, sizes[sha], refs[sha], report)
    return report


def _check_object(repo: Repository, sha: str, size: int, refs: list[str], report: VerifyReport) -> None:
    path = repo.objects.path(sha)
    report.objects_checked += 1
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.problems.append(Problem("missing", str(path), "object file does not exist", refs))
        return
    except OSError as exc:
        report.problems.append(Problem("missing", str(path), f"unreadable: {exc.strerror}", refs))
        return
    report.bytes_checked += len(data)
    if sha256_hex(data) != sha or len(data) != size:
        detail = f"sha256 {sha256_hex(data)} size {len(data)}; expected {sha} size {size}"
        report.problems.append(Problem("corrupt", str(path), detail, refs))
