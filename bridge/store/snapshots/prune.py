"""Prune: the only place snapshots and objects are deleted, an explicit act with a keep-policy.

Plan, then execute (restic's `PlanPrune`/`Execute`): `plan_prune` decides purely which snapshots
go; `prune` deletes them, then every object no manifest references, under the exclusive lock.
By default the newest snapshot and every snapshot holding registered creds are kept whatever the
policy says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import msgspec

from bridge.errors import ErrorCode, SnapshotError
from bridge.store.snapshots.manifests import ManifestList, ManifestStore
from bridge.store.snapshots.repository import Repository

log = logging.getLogger(__name__)


class KeepPolicy(msgspec.Struct, frozen=True):
    """Which snapshots `prune` keeps: the last N, the newest per day for D days, per ISO week for W."""

    last: int = 10
    daily: int = 7
    weekly: int = 4

    def keeps_anything(self) -> bool:
        """A policy keeping nothing is refused: it would delete every snapshot."""
        return self.last > 0 or self.daily > 0 or self.weekly > 0


class PruneReport(msgspec.Struct):
    """What `prune` kept, removed, and why it kept protected snapshots."""

    session: str
    kept: list[str] = []
    removed: list[str] = []
    protected: list[str] = []
    objects_removed: int = 0
    bytes_freed: int = 0
    dry_run: bool = False


class Keepable(Protocol):
    """What the keep decision reads of a snapshot (a manifest, or a row of the cluster's table)."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> float: ...

    @property
    def registered(self) -> bool: ...


K = TypeVar("K", bound=Keepable)


def plan_prune(
    manifests: ManifestStore, session_id: str, policy: KeepPolicy, *, force: bool = False
) -> tuple[ManifestList, ManifestList, ManifestList]:
    """(keep, remove, protected) for a session under `policy`; decides, deletes nothing."""
    return plan_keep(manifests.all(session_id), policy, force=force)


def plan_keep(snaps: Sequence[K], policy: KeepPolicy, *, force: bool = False) -> tuple[list[K], list[K], list[K]]:
    """(keep, remove, protected) of one session's snapshots, newest first, under `policy`: the rule
    itself, shared by the file prune and the cluster's retention (bridge/cluster/retention.py)."""
    if not policy.keeps_anything():
        raise SnapshotError(
            "refusing a keep-policy that keeps nothing; keep at least --keep-last 1", code=ErrorCode.BAD_POLICY
        )
    keep_ids: set[str] = {m.id for m in snaps[: policy.last]}
    for fmt, count in (("%Y-%m-%d", policy.daily), ("%G-W%V", policy.weekly)):
        buckets: set[str] = set()
        for m in snaps:
            bucket = datetime.fromtimestamp(m.created_at, UTC).strftime(fmt)
            if bucket not in buckets and len(buckets) < count:
                buckets.add(bucket)
                keep_ids.add(m.id)
    protected = [] if force else [m for i, m in enumerate(snaps) if m.id not in keep_ids and (i == 0 or m.registered)]
    protected_ids = {m.id for m in protected}
    keep = [m for m in snaps if m.id in keep_ids or m.id in protected_ids]
    remove = [m for m in snaps if m.id not in keep_ids and m.id not in protected_ids]
    return keep, remove, protected


def prune(
    repo: Repository, session_id: str, policy: KeepPolicy, force: bool = False, *, dry_run: bool = False
) -> PruneReport:
    """Delete the snapshots `policy` does not keep, then every object no manifest references.

    Objects are deleted only here, under the exclusive repository lock, and not at all while any
    manifest is unreadable (its references are unknown).
    """
    keep, remove, protected = plan_prune(repo.manifests, session_id, policy, force=force)
    report = PruneReport(
        session=session_id,
        kept=[m.id for m in keep],
        removed=[m.id for m in remove],
        protected=[m.id for m in protected],
        dry_run=dry_run,
    )
    if dry_run:
        return report
    with repo.exclusive_lock():
        repo.manifests.remove(session_id, remove)
        report.objects_removed, report.bytes_freed = collect_garbage(repo)
    log.warning("pruned %d snapshots of %s (%d objects)", len(remove), session_id, report.objects_removed)
    return report


def collect_garbage(repo: Repository) -> tuple[int, int]:
    """Delete every object no manifest references (caller holds the exclusive lock)."""
    referenced = repo.manifests.referenced()
    if referenced is None:
        return 0, 0
    return repo.objects.remove(p.name for p in repo.objects.paths() if p.name not in referenced)
