"""Retention of the cluster's snapshots and trash (bridge/cluster/retention.py): file mode's rules, one
node at a time. It removes the snapshots the keep-policy does not keep (never a tenant's newest, never
one with registered creds), then only the objects no kept manifest references (objects are shared
across snapshots and tenants), and trashed keys past their age (never a creds name); a kept snapshot
still restores afterwards. Real PostgreSQL, one server per module."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.leases import add_tenant, claim_tenant, release_tenant
from bridge.cluster.operator import operator_hold
from bridge.cluster.retention import (
    RETENTION_LOCK_KEY,
    RetentionLoop,
    RetentionPolicy,
    RetentionReport,
    SnapshotRow,
    TrashRow,
    created_at_of,
    plan_retention,
    prune,
)
from bridge.cluster.snapshots import OBJECTS_LOCK_KEY, PgSnapshots
from bridge.errors import ErrorCode, SnapshotError
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots import KeepPolicy
from bridge.store.snapshots.manifests import SnapshotManifest, build_manifest
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.prune import plan_keep

LAST_TWO = RetentionPolicy(snapshots=KeepPolicy(last=2, daily=1, weekly=1))
K = [f'{{"k":{n}}}'.encode() for n in range(5)]


def _backend(pool: ConnectionPool, sid: str, node: str = "node-a") -> PgAuthBackend:
    with pool.connection() as conn:
        add_tenant(conn, sid)
        lease = claim_tenant(conn, sid, node, 30.0)
    assert lease is not None
    return PgAuthBackend(pool, sid, node_id=node, epoch=lease.epoch)


def _release(pool: ConnectionPool, backend: PgAuthBackend) -> None:
    with pool.connection() as conn:
        release_tenant(conn, backend.session_id, backend.node_id, backend.epoch)


def _objects(pool: ConnectionPool) -> set[str]:
    with pool.connection() as conn:
        return {str(r[0]) for r in conn.execute("SELECT sha256 FROM bridge_snapshot_objects").fetchall()}


def _four_snapshots(pool: ConnectionPool, creds: bytes) -> tuple[PgAuthBackend, list[SnapshotManifest]]:
    """Tenant t1, unregistered, four snapshots: {k0,k1}, {k1,k2}, {k2,k3}, {k3} (oldest first)."""
    snaps, backend = PgSnapshots(pool), _backend(pool, "t1")
    made = []
    backend.commit({CREDS_FILE: creds, "pre-key-0.json": K[0], "pre-key-1.json": K[1]}, [])
    made.append(snaps.create("t1"))
    backend.commit({"pre-key-2.json": K[2]}, ["pre-key-0.json"])
    made.append(snaps.create("t1"))
    backend.commit({"pre-key-3.json": K[3]}, ["pre-key-1.json"])
    made.append(snaps.create("t1"))
    backend.commit({}, ["pre-key-2.json"])
    made.append(snaps.create("t1"))
    return backend, made


def test_retention_removes_unkept_snapshots_and_only_objects_no_kept_manifest_references_then_a_kept_one_restores(
    pool: ConnectionPool, fresh_creds: str, registered_creds: str
) -> None:
    snaps = PgSnapshots(pool)
    t1, made = _four_snapshots(pool, fresh_creds.encode())
    other = _backend(pool, "t2")  # another tenant holding k1's exact bytes: the object is shared
    other.commit({CREDS_FILE: fresh_creds.encode(), "pre-key-9.json": K[1]}, [])
    shared = snaps.create("t2")
    linked = _backend(pool, "t3")
    linked_made = []
    for n in range(3):
        linked.commit({CREDS_FILE: registered_creds.encode(), "pre-key-1.json": f'{{"l":{n}}}'.encode()}, [])
        linked_made.append(snaps.create("t3"))
    before = _objects(pool)

    report = prune(pool, LAST_TWO)

    assert report.ran and not report.dry_run
    assert sorted(report.snapshots_removed) == sorted(f"t1/{m.id}" for m in made[:2])
    assert [m.id for m in snaps.newest_first("t1")] == [made[3].id, made[2].id]
    assert [m.id for m in snaps.newest_first("t2")] == [shared.id], "a tenant's only (newest) snapshot stays"
    assert [m.id for m in snaps.newest_first("t3")] == [m.id for m in reversed(linked_made)]
    assert sorted(report.protected) == sorted(f"t3/{m.id}" for m in linked_made[:1]), (
        "registered snapshots beyond the policy are kept as protected"
    )
    assert before - _objects(pool) == {sha256_hex(K[0])}, "k1 is still referenced by t2, k2 by a kept t1 snapshot"
    assert report.objects_removed == 1 and report.object_bytes_freed == len(K[0]) and not report.objects_skipped
    assert snaps.verify().ok, "every kept snapshot has all its objects"

    _release(pool, t1)
    with operator_hold(pool, "t1", "restore") as backend:
        outcome = snaps.restore(backend, made[2].id)
        assert backend.read(backend.list_names()) == {
            CREDS_FILE: fresh_creds.encode(), "pre-key-2.json": K[2], "pre-key-3.json": K[3]}
    assert outcome.restored.id == made[2].id

    again = prune(pool, LAST_TWO)  # the restore's pre-restore snapshot made t1 hold three
    assert again.snapshots_removed == [f"t1/{made[2].id}"]
    assert again.objects_removed == 1 and sha256_hex(K[2]) not in _objects(pool), (
        "k2 went with the last snapshot referencing it (the live state holds it, snapshots do not)"
    )
    assert snaps.verify().ok


def test_trashed_keys_go_after_their_age_never_a_creds_name_and_a_dry_run_deletes_nothing(
    pool: ConnectionPool, fresh_creds: str
) -> None:
    backend = _backend(pool, "t1")
    backend.commit({CREDS_FILE: fresh_creds.encode(), **{f"pre-key-{n}.json": K[n] for n in range(4)}}, [])
    backend.commit({}, ["pre-key-0.json", "pre-key-1.json"])
    backend.commit({}, ["pre-key-2.json"])
    with pool.connection() as conn:  # two of the three deletions are 31 days old, and a stray creds row too
        conn.execute("UPDATE bridge_auth_trash SET trashed_at = now() - interval '31 days' "
                     "WHERE name IN ('pre-key-0.json', 'pre-key-1.json')")
        conn.execute("INSERT INTO bridge_auth_trash (session_id, name, data, epoch, trashed_at) "
                     "VALUES ('t1', 'creds.json', %s, 1, now() - interval '400 days')", (fresh_creds.encode(),))

    dry = prune(pool, RetentionPolicy(trash_max_age_days=30), dry_run=True)
    assert dry.ran and dry.dry_run and dry.trash_removed == 2 and dry.trash_bytes_freed == len(K[0]) + len(K[1])
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM bridge_auth_trash").fetchone() == (4,)

    report = prune(pool, RetentionPolicy(trash_max_age_days=30))
    assert report.trash_removed == 2
    with pool.connection() as conn:
        left = sorted(str(r[0]) for r in conn.execute("SELECT name FROM bridge_auth_trash").fetchall())
    assert left == [CREDS_FILE, "pre-key-2.json"]
    assert backend.read([CREDS_FILE, "pre-key-3.json"]) == {CREDS_FILE: fresh_creds.encode(), "pre-key-3.json": K[3]}


def test_one_node_at_a_time_and_never_while_a_snapshot_is_being_written(
    pool: ConnectionPool, fresh_creds: str
) -> None:
    _four_snapshots(pool, fresh_creds.encode())
    with pool.connection() as other:  # another node is applying retention
        other.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
        skipped = prune(pool, LAST_TWO)
        other.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK_KEY,))
    assert not skipped.ran and not skipped.snapshots_removed
    assert len(PgSnapshots(pool).newest_first("t1")) == 4

    done = threading.Event()

    def apply() -> None:
        prune(pool, LAST_TWO)
        done.set()

    with pool.connection() as writer:  # a snapshot being written holds the objects lock shared
        writer.execute("SELECT pg_advisory_lock_shared(%s)", (OBJECTS_LOCK_KEY,))
        runner = threading.Thread(target=apply)
        runner.start()
        assert not done.wait(1.0), "the pass waits for the snapshot being written"
        assert len(PgSnapshots(pool).newest_first("t1")) == 4
        writer.execute("SELECT pg_advisory_unlock_shared(%s)", (OBJECTS_LOCK_KEY,))
    runner.join(30)
    assert done.is_set() and len(PgSnapshots(pool).newest_first("t1")) == 2

    created = threading.Event()

    def snapshot() -> None:
        PgSnapshots(pool).create("t1")
        created.set()

    with pool.connection() as pruner:  # and a snapshot waits while a pass collects objects
        pruner.execute("SELECT pg_advisory_lock(%s)", (OBJECTS_LOCK_KEY,))
        writer_thread = threading.Thread(target=snapshot)
        writer_thread.start()
        assert not created.wait(1.0), "the snapshot waits for the pass"
        pruner.execute("SELECT pg_advisory_unlock(%s)", (OBJECTS_LOCK_KEY,))
    writer_thread.join(30)
    assert created.is_set() and len(PgSnapshots(pool).newest_first("t1")) == 3


def test_an_object_a_snapshot_reuses_while_the_pass_reads_the_manifests_is_kept(
    pool: ConnectionPool, fresh_creds: str
) -> None:
    """A snapshot written during the pass (its transaction open while the pass looks for unreferenced
    objects) reuses k0, which only the snapshots the pass removes referenced: k0 stays."""
    _four_snapshots(pool, fresh_creds.encode())
    result: list[RetentionReport] = []

    def apply() -> None:
        result.append(prune(pool, LAST_TWO))

    with pool.connection() as writer:  # what PgSnapshots.create does, held open at its last step
        writer.execute("SELECT pg_advisory_lock_shared(%s)", (OBJECTS_LOCK_KEY,))
        with writer.transaction():
            writer.execute("INSERT INTO bridge_snapshot_objects (sha256, data) VALUES (%s, %s) "
                           "ON CONFLICT (sha256) DO NOTHING", (sha256_hex(K[0]), K[0]))
            manifest = build_manifest("t7", "20261203T000000000000Z-000000", 0.0, "manual",
                                      {"pre-key-0.json": K[0]}, [sha256_hex(K[0])], "cluster:t7")
            writer.execute("INSERT INTO bridge_snapshot_manifests (session_id, id, reason, registered, manifest) "
                           "VALUES ('t7', %s, 'manual', false, %s)", (manifest.id, msgspec.json.encode(manifest)))
            runner = threading.Thread(target=apply)
            runner.start()
            time.sleep(1.0)  # the pass reads the manifests meanwhile, then waits for the objects lock
        writer.execute("SELECT pg_advisory_unlock_shared(%s)", (OBJECTS_LOCK_KEY,))
    runner.join(30)
    assert result and len(result[0].snapshots_removed) == 2
    assert sha256_hex(K[0]) in _objects(pool) and sha256_hex(K[1]) not in _objects(pool)
    assert PgSnapshots(pool).verify().ok


def test_an_unreadable_manifest_keeps_every_object(pool: ConnectionPool, fresh_creds: str) -> None:
    _four_snapshots(pool, fresh_creds.encode())
    with pool.connection() as conn:
        conn.execute("INSERT INTO bridge_snapshot_manifests (session_id, id, reason, registered, manifest) "
                     "VALUES ('t9', 'broken', 'manual', false, %s)", (b'{"id": "broken", "files": 7',))
    before = _objects(pool)
    report = prune(pool, LAST_TWO)
    assert len(report.snapshots_removed) == 2 and report.objects_removed == 0
    assert "unreadable" in report.objects_skipped and _objects(pool) == before

    with pool.connection() as conn:  # valid JSON, but no list of files: its references are unknown too
        conn.execute("UPDATE bridge_snapshot_manifests SET manifest = %s WHERE id = 'broken'", (b'{"id": "broken"}',))
    PgSnapshots(pool).create("t1")
    PgSnapshots(pool).create("t1")
    report = prune(pool, LAST_TWO)
    assert report.snapshots_removed and report.objects_removed == 0
    assert "bridge_snapshot_manifests/t9/broken" in report.objects_skipped


async def test_every_node_runs_the_loop_and_the_trash_is_pruned_without_anyone_asking(
    pool: ConnectionPool, fresh_creds: str
) -> None:
    backend = _backend(pool, "t1")
    backend.commit({CREDS_FILE: fresh_creds.encode(), "pre-key-1.json": K[1]}, [])
    backend.commit({}, ["pre-key-1.json"])
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_auth_trash SET trashed_at = now() - interval '2 days'")
    loops = [RetentionLoop(pool, RetentionPolicy(trash_max_age_days=1), interval=0.2) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        for _ in range(100):
            with pool.connection() as conn:
                if conn.execute("SELECT count(*) FROM bridge_auth_trash").fetchone() == (0,):
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the retention loops never pruned the trash")
    finally:
        for loop in loops:
            await loop.close()


def test_the_plan_is_file_modes_keep_rule_per_tenant_with_the_time_the_manifest_id_spells() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)

    def row(sid: str, days: float, registered: bool = False) -> SnapshotRow:
        at = now - timedelta(days=days)
        snap_id = f"{at:%Y%m%dT%H%M%S}{at.microsecond:06d}Z-abcdef"
        assert created_at_of(snap_id, 0.0) == at.timestamp()
        return SnapshotRow(sid, snap_id, created_at_of(snap_id, 0.0), registered)

    rows = [row("a", d / 2) for d in range(40)] + [row("b", 90 + h / 24, registered=True) for h in range(5)]
    policy = RetentionPolicy(snapshots=KeepPolicy(last=3, daily=4, weekly=2))
    plan = plan_retention(rows, [TrashRow(1, "a", "pre-key-1.json", 9), TrashRow(2, "a", "old-creds.json", 9)], policy)

    newest_a = sorted((r for r in rows if r.session == "a"), key=lambda r: r.id, reverse=True)
    _, remove_a, _ = plan_keep(newest_a, policy.snapshots)
    assert plan.remove == remove_a and all(r.session == "a" for r in plan.remove)
    assert newest_a[0] not in plan.remove
    assert {r.id for r in plan.protected} == {r.id for r in rows[-2:]}, (
        "b's registered snapshots beyond the policy are protected"
    )
    assert [t.row_id for t in plan.trash] == [1], "a name ending in creds.json is never pruned"
    assert created_at_of("not-an-id", 12.5) == 12.5
    with pytest.raises(SnapshotError) as refused:
        plan_retention(rows, [], RetentionPolicy(snapshots=KeepPolicy(last=0, daily=0, weekly=0)))
    assert refused.value.code == ErrorCode.BAD_POLICY
    assert msgspec.json.decode(msgspec.json.encode(policy), type=RetentionPolicy) == policy
