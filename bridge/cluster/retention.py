"""Retention of the cluster's snapshots and trash: file mode's rules, applied by one node at a time.

The rules are file mode's (docs/operations.md, "Prune"), with the same settings:
- snapshots: per tenant, `KeepPolicy()` (the newest 10, the newest of each of the last 7 days and 4
  ISO weeks, UTC) decided by the same function as `python -m bridge prune`
  (`bridge.store.snapshots.prune.plan_keep`); the newest snapshot of a tenant and every snapshot
  with registered creds are kept whatever the policy says (never forced here);
- objects: content-addressed and shared across snapshots and tenants, so an object goes only when
  no manifest that is kept references it, and none at all while any manifest is unreadable (its
  references are unknown);
- trash: rows of `bridge_auth_trash` older than `BRIDGE_TRASH_MAX_AGE_DAYS` (by the database's
  clock), never a name ending in creds.json.

Plan, then execute: `prune` reads the rows and `plan_retention` decides (pure) which manifests and
trash rows go; the same transaction deletes them, then plans and deletes the objects nothing
references any more (`collect_objects`). The transaction first takes the retention lock with `try`
(one node at a time; a node that does not get it skips the pass). Before deleting objects it takes
the objects lock exclusively (`bridge.cluster.snapshots.OBJECTS_LOCK_KEY`, held shared by every
snapshot being created) and checks again what was committed meanwhile, so a snapshot that reuses
an object is either committed and seen, or waits until the pass is over and stores the object again.
Objects are collected only in a pass that removed a snapshot (only that makes objects unreferenced).

Every node runs `RetentionLoop` (`FIRST_PASS_AFTER` s after it starts, then every `RETENTION_INTERVAL`
s); whichever gets the lock does the pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from bridge.cluster.snapshots import OBJECTS_LOCK_KEY
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots.prune import KeepPolicy, plan_keep

log = logging.getLogger(__name__)

#: How often every node tries a retention pass (s); only the one holding the lock does it.
RETENTION_INTERVAL: Final = 3600.0
#: When a node tries its first pass after it started (s): soon, so nodes restarted more often than
#: every `RETENTION_INTERVAL` (frequent deploys) still apply retention.
FIRST_PASS_AFTER: Final = 300.0
#: Names the advisory lock that lets one node at a time apply retention (ASCII "bridgert").
RETENTION_LOCK_KEY: Final = 0x6272696467657274


class RetentionPolicy(msgspec.Struct, frozen=True):
    """What retention keeps: file mode's `KeepPolicy` defaults and `BRIDGE_TRASH_MAX_AGE_DAYS`."""

    snapshots: KeepPolicy = KeepPolicy()
    trash_max_age_days: float = 30.0


class SnapshotRow(msgspec.Struct, frozen=True):
    """What the keep decision reads of one manifest row (the manifest itself is not fetched)."""

    session: str
    id: str
    created_at: float
    registered: bool


class TrashRow(msgspec.Struct, frozen=True):
    """One trashed key older than the cutoff (a candidate; the plan decides)."""

    row_id: int
    session: str
    name: str
    size: int


class RetentionPlan(msgspec.Struct):
    """Which manifests and trash rows go (and which snapshots were kept only because protected)."""

    remove: list[SnapshotRow] = []
    protected: list[SnapshotRow] = []
    kept: int = 0
    trash: list[TrashRow] = []


class RetentionReport(msgspec.Struct):
    """What a pass removed. `ran` False: another node held the lock, nothing was done."""

    ran: bool
    dry_run: bool = False
    snapshots_removed: list[str] = []
    snapshots_kept: int = 0
    protected: list[str] = []
    objects_removed: int = 0
    object_bytes_freed: int = 0
    objects_skipped: str = ""
    trash_removed: int = 0
    trash_bytes_freed: int = 0


def created_at_of(snapshot_id: str, fallback: float) -> float:
    """The creation time a manifest id spells (`YYYYmmddTHHMMSS<µs>Z-<random>`, the time its manifest
    holds, to the microsecond), else `fallback` (the row's own time)."""
    try:
        stamp = datetime.strptime(snapshot_id.split("Z-", 1)[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return fallback
    return stamp.timestamp()


def plan_retention(
    snapshots: Sequence[SnapshotRow], trash: Sequence[TrashRow], policy: RetentionPolicy
) -> RetentionPlan:
    """Decide, delete nothing. `snapshots`: every manifest row; `trash`: rows older than the cutoff."""
    plan = RetentionPlan(remove=[], protected=[], trash=[])
    by_session: dict[str, list[SnapshotRow]] = {}
    for row in snapshots:
        by_session.setdefault(row.session, []).append(row)
    for rows in by_session.values():
        newest_first = sorted(rows, key=lambda r: r.id, reverse=True)
        keep, remove, protected = plan_keep(newest_first, policy.snapshots)
        plan.kept += len(keep)
        plan.remove += remove
        plan.protected += protected
    plan.trash = [t for t in trash if not t.name.endswith(CREDS_FILE)]
    return plan


def prune(pool: ConnectionPool, policy: RetentionPolicy, *, dry_run: bool = False) -> RetentionReport:
    """One retention pass (see the module docstring); `dry_run` plans and reports, deletes nothing."""
    with pool.connection() as conn, conn.transaction():
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK_KEY,)).fetchone()
        if row is None or not row[0]:
            return RetentionReport(ran=False, dry_run=dry_run)
        plan = plan_retention(_snapshot_rows(conn), _old_trash(conn, policy.trash_max_age_days), policy)
        report = RetentionReport(
            ran=True,
            dry_run=dry_run,
            snapshots_removed=[f"{r.session}/{r.id}" for r in plan.remove],
            snapshots_kept=plan.kept,
            protected=[f"{r.session}/{r.id}" for r in plan.protected],
            trash_removed=len(plan.trash),
            trash_bytes_freed=sum(t.size for t in plan.trash),
        )
        if dry_run:
            return report
        if plan.remove:
            conn.execute(
                "DELETE FROM bridge_snapshot_manifests m USING unnest(%s::text[], %s::text[]) AS r(session_id, id) "
                "WHERE m.session_id = r.session_id AND m.id = r.id",
                ([r.session for r in plan.remove], [r.id for r in plan.remove]),
            )
            report.objects_removed, report.object_bytes_freed, report.objects_skipped = collect_objects(conn)
        if plan.trash:
            trashed = [t.row_id for t in plan.trash]
            conn.execute("DELETE FROM bridge_auth_trash WHERE id = ANY(%s::bigint[])", (trashed,))
    if plan.remove or plan.trash:
        log.warning(
            "cluster retention: removed %d snapshot(s), %d object(s) (%d bytes), %d trashed key(s) (%d bytes)%s",
            len(plan.remove), report.objects_removed, report.object_bytes_freed, report.trash_removed,
            report.trash_bytes_freed, f"; objects kept: {report.objects_skipped}" if report.objects_skipped else "",
        )
    return report


def collect_objects(conn: psycopg.Connection[TupleRow]) -> tuple[int, int, str]:
    """Delete every object no manifest references; (objects, bytes, why none were) removed.

    Runs inside the caller's transaction (after its manifest deletions), in a savepoint: a manifest
    the database cannot read as a manifest (not JSON, `files` not a list of entries with a sha256)
    removes no object at all, and the caller's other deletions stand. The expensive part, reading
    every manifest, runs without the objects lock, so snapshots go on meanwhile:
    1. note which manifests exist, then find the objects none of them references (candidates);
    2. take the objects lock exclusively: snapshots being written commit first, new ones wait;
    3. drop from the candidates what the manifests committed since step 1 reference, delete the rest.
    The order in step 1 matters: a manifest committed between its two reads is not in the noted
    set, so step 3 checks it again.
    """
    try:
        with conn.transaction():
            seen = conn.execute("SELECT session_id, id FROM bridge_snapshot_manifests").fetchall()
            noted = ([str(r[0]) for r in seen], [str(r[1]) for r in seen])
            bad = conn.execute(_UNREADABLE.encode()).fetchall()
            if bad:
                return 0, 0, _unreadable(bad)
            candidates = {str(sha): int(size) for sha, size in conn.execute(_ORPHANS.encode()).fetchall()}
            if not candidates:
                return 0, 0, ""
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (OBJECTS_LOCK_KEY,))
            bad = conn.execute(_UNREADABLE_NEW.encode(), noted).fetchall()
            if bad:
                return 0, 0, _unreadable(bad)
            for (sha,) in conn.execute(_REFERENCED_BY_NEW.encode(), (*noted, sorted(candidates))).fetchall():
                candidates.pop(str(sha), None)
            doomed = sorted(candidates)
            if doomed:
                conn.execute("DELETE FROM bridge_snapshot_objects WHERE sha256 = ANY(%s::text[])", (doomed,))
    except (psycopg.errors.DataError, psycopg.errors.InvalidParameterValue) as exc:
        return 0, 0, _unreadable([], detail=str(exc).splitlines()[0])
    return len(candidates), sum(candidates.values()), ""


def _unreadable(rows: Sequence[tuple[object, ...]], detail: str = "") -> str:
    named = ", ".join(f"bridge_snapshot_manifests/{sid}/{sid2}" for sid, sid2 in rows[:5])
    message = f"a manifest is unreadable ({named or detail}); no object removed, run `python -m bridge cluster verify`"
    log.error("cluster retention: %s", message)
    return message


_MANIFEST_JSON: Final = "convert_from(m.manifest, 'UTF8')::jsonb"
_BAD_MANIFEST: Final = f"""(
    jsonb_typeof({_MANIFEST_JSON} -> 'files') IS DISTINCT FROM 'array'
    OR jsonb_path_exists({_MANIFEST_JSON}, '$.files[*] ? (!exists(@.sha256) || @.sha256.type() != "string")'))"""
#: The manifests that are not among the noted ones (parameters: their session ids, their ids).
_NEW: Final = """WITH m AS MATERIALIZED (
    SELECT m.session_id, m.id, m.manifest FROM bridge_snapshot_manifests m
    LEFT JOIN unnest(%s::text[], %s::text[]) AS s(sid, id) ON s.sid = m.session_id AND s.id = m.id
    WHERE s.sid IS NULL
)"""
_UNREADABLE: Final = f"SELECT m.session_id, m.id FROM bridge_snapshot_manifests m WHERE {_BAD_MANIFEST} ORDER BY 1, 2"
_UNREADABLE_NEW: Final = f"{_NEW} SELECT m.session_id, m.id FROM m WHERE {_BAD_MANIFEST} ORDER BY 1, 2"
_ORPHANS: Final = f"""
WITH refs AS MATERIALIZED (
    SELECT DISTINCT f ->> 'sha256' AS sha
    FROM bridge_snapshot_manifests m, jsonb_array_elements({_MANIFEST_JSON} -> 'files') AS f
)
SELECT o.sha256, octet_length(o.data) FROM bridge_snapshot_objects o
WHERE NOT EXISTS (SELECT 1 FROM refs WHERE refs.sha = o.sha256)
"""
_REFERENCED_BY_NEW: Final = f"""{_NEW}
SELECT DISTINCT f ->> 'sha256' FROM m, jsonb_array_elements({_MANIFEST_JSON} -> 'files') AS f
WHERE f ->> 'sha256' = ANY(%s::text[])
"""


def _snapshot_rows(conn: psycopg.Connection[TupleRow]) -> list[SnapshotRow]:
    rows = conn.execute(
        "SELECT session_id, id, extract(epoch FROM created_at)::float8, registered FROM bridge_snapshot_manifests"
    ).fetchall()
    return [SnapshotRow(str(s), str(i), created_at_of(str(i), float(at)), bool(reg)) for s, i, at, reg in rows]


def _old_trash(conn: psycopg.Connection[TupleRow], max_age_days: float) -> list[TrashRow]:
    rows = conn.execute(
        "SELECT id, session_id, name, octet_length(data) FROM bridge_auth_trash "
        "WHERE trashed_at < now() - make_interval(secs => %s) ORDER BY id",
        (max_age_days * 86400.0,),
    ).fetchall()
    return [TrashRow(int(i), str(s), str(n), int(size)) for i, s, n, size in rows]


class RetentionLoop:
    """`first_after` s after `start`, then every `interval` s, try a retention pass on this node (it
    runs where the lock is free)."""

    def __init__(
        self,
        pool: ConnectionPool,
        policy: RetentionPolicy,
        interval: float = RETENTION_INTERVAL,
        first_after: float = FIRST_PASS_AFTER,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.interval = interval
        self.first_after = min(first_after, interval)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            try:
                await asyncio.to_thread(prune, self.pool, self.policy)
            except Exception as exc:
                log.warning("cluster retention failed (%s); next try in %.0f s", exc, self.interval)
            await asyncio.sleep(self.interval)
