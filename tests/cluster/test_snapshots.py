"""Snapshots of cluster tenants in tables: content-addressed, verifiable, restorable, never deleting."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.leases import add_tenant, claim_tenant, release_tenant
from bridge.cluster.snapshots import PgSnapshots, object_ref
from bridge.errors import ErrorCode, ExitCode, SnapshotError, StoreError
from bridge.store.auth_store import AuthStore
from bridge.store.snapshots import PRE_RESTORE
from bridge.store.snapshots.objects import sha256_hex
from tests.cluster.cli_runner import cli_json

TTL = 30.0


def _backend(pool: ConnectionPool, session_id: str, node: str = "node-a") -> PgAuthBackend:
    with pool.connection() as conn:
        add_tenant(conn, session_id)
        lease = claim_tenant(conn, session_id, node, TTL)
    assert lease is not None
    return PgAuthBackend(pool, session_id, node_id=node, epoch=lease.epoch)


def _state(backend: PgAuthBackend) -> dict[str, bytes | None]:
    names = backend.list_names()
    return backend.read(names)


def _count(pool: ConnectionPool, table: str) -> int:
    with pool.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
    assert row is not None
    return int(row[0])


def test_a_snapshot_holds_the_exact_bytes_and_identical_files_are_stored_once(
    pool: ConnectionPool, registered_creds: str
) -> None:
    snaps = PgSnapshots(pool)
    one, two = _backend(pool, "s1"), _backend(pool, "s2")
    for backend in (one, two):
        backend.commit({"creds.json": registered_creds.encode(), "pre-key-1.json": b'{"k":1}'}, [])
    first = snaps.create("s1")
    second = snaps.create("s1")
    snaps.create("s2")
    assert first.registered and first.id < second.id
    assert {f.name: snaps.read_object(f.sha256) for f in first.files} == _state(one)
    assert _count(pool, "bridge_snapshot_objects") == 2, "three snapshots of identical files share two objects"
    assert [m.id for m in snaps.newest_first("s1")] == [second.id, first.id]
    assert snaps.get("s1", first.id[:-6]).id == first.id, "a unique prefix names a snapshot"


def test_a_tenant_without_auth_state_cannot_be_snapshotted(pool: ConnectionPool) -> None:
    with pytest.raises(SnapshotError) as err:
        PgSnapshots(pool).create("nobody")
    assert err.value.code == ErrorCode.SESSION_FOLDER_MISSING


def test_unknown_and_ambiguous_ids_are_clear_errors(pool: ConnectionPool, fresh_creds: str) -> None:
    snaps = PgSnapshots(pool)
    _backend(pool, "s1").commit({"creds.json": fresh_creds.encode()}, [])
    snaps.create("s1")
    snaps.create("s1")
    with pytest.raises(SnapshotError) as unknown:
        snaps.get("s1", "nope")
    assert unknown.value.code == ErrorCode.SNAPSHOT_NOT_FOUND
    with pytest.raises(SnapshotError) as ambiguous:
        snaps.get("s1", "2")
    assert ambiguous.value.code == ErrorCode.SNAPSHOT_AMBIGUOUS


def test_verify_names_every_missing_and_corrupt_object_with_the_snapshots_using_it(
    pool: ConnectionPool, fresh_creds: str
) -> None:
    snaps = PgSnapshots(pool)
    _backend(pool, "s1").commit(
        {"creds.json": fresh_creds.encode(), "pre-key-1.json": b"1", "pre-key-2.json": b"2"}, []
    )
    manifest = snaps.create("s1")
    assert snaps.verify().ok and snaps.verify(session_id="s1").objects_checked == 3
    sha1, sha2 = sha256_hex(b"1"), sha256_hex(b"2")
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_snapshot_objects SET data = 'X' WHERE sha256 = %s", (sha1,))
        conn.execute("DELETE FROM bridge_snapshot_objects WHERE sha256 = %s", (sha2,))
    report = snaps.verify(session_id="s1")
    assert not report.ok
    assert {(p.kind, p.path) for p in report.problems} == {("corrupt", object_ref(sha1)), ("missing", object_ref(sha2))}
    using = {p.path: p.snapshots for p in report.problems}
    assert using == {
        object_ref(sha1): [f"s1/{manifest.id}:pre-key-1.json"],
        object_ref(sha2): [f"s1/{manifest.id}:pre-key-2.json"],
    }


def test_a_new_snapshot_heals_a_corrupt_object_from_good_bytes(pool: ConnectionPool, fresh_creds: str) -> None:
    snaps = PgSnapshots(pool)
    _backend(pool, "s1").commit({"creds.json": fresh_creds.encode(), "pre-key-1.json": b"1"}, [])
    snaps.create("s1")
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_snapshot_objects SET data = 'X' WHERE sha256 = %s", (sha256_hex(b"1"),))
    assert not snaps.verify().ok
    snaps.create("s1")
    assert snaps.verify().ok


def test_restore_puts_the_snapshot_back_and_keeps_what_it_replaced(
    pool: ConnectionPool, registered_creds: str, fresh_creds: str
) -> None:
    snaps = PgSnapshots(pool)
    backend = _backend(pool, "s1")
    backend.commit({"creds.json": registered_creds.encode(), "pre-key-1.json": b'"one"'}, [])
    good = snaps.create("s1")
    before = _state(backend)
    backend.commit({"creds.json": fresh_creds.encode(), "pre-key-2.json": b'"two"'}, ["pre-key-1.json"])
    replaced = _state(backend)

    outcome = snaps.restore(backend, good.id)
    assert _state(backend) == before
    assert outcome.pre_restore_snapshot is not None and (outcome.keys_before, outcome.keys_after) == (1, 1)
    evidence = snaps.get("s1", outcome.pre_restore_snapshot)
    assert evidence.reason == PRE_RESTORE
    assert {f.name: snaps.read_object(f.sha256) for f in evidence.files} == replaced
    with pool.connection() as conn:
        trashed = conn.execute("SELECT name, data FROM bridge_auth_trash ORDER BY id").fetchall()
    assert [(n, bytes(d)) for n, d in trashed] == [("pre-key-1.json", b'"one"'), ("pre-key-2.json", b'"two"')]
    assert snaps.latest_good("s1") == good, "a pre-restore snapshot is evidence, never the one to restore"


def test_restore_refuses_a_damaged_snapshot_and_changes_nothing(pool: ConnectionPool, fresh_creds: str) -> None:
    snaps = PgSnapshots(pool)
    backend = _backend(pool, "s1")
    backend.commit({"creds.json": fresh_creds.encode(), "pre-key-1.json": b'"one"'}, [])
    damaged = snaps.create("s1")
    backend.commit({"pre-key-1.json": b'"newer"'}, [])
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_snapshot_objects SET data = 'X' WHERE sha256 = %s", (sha256_hex(b'"one"'),))
    before = _state(backend)
    with pytest.raises(SnapshotError, match="corrupt"):
        snaps.restore(backend, damaged.id)
    assert _state(backend) == before
    assert len(snaps.newest_first("s1")) == 1, "no pre-restore snapshot either"


def test_restore_with_a_stale_lease_writes_nothing(pool: ConnectionPool, fresh_creds: str) -> None:
    snaps = PgSnapshots(pool)
    stale = _backend(pool, "s1")
    stale.commit({"creds.json": fresh_creds.encode(), "pre-key-1.json": b'"one"'}, [])
    snap = snaps.create("s1")
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '1 microsecond'")
    current = _backend(pool, "s1", node="node-b")
    current.commit({"pre-key-1.json": b'"b"'}, [])
    with pytest.raises(StoreError) as refused:
        snaps.restore(stale, snap.id)
    assert refused.value.code == ErrorCode.LEASE_LOST
    assert current.read(["pre-key-1.json"]) == {"pre-key-1.json": b'"b"'}


def test_in_cluster_mode_a_creds_downgrade_is_preceded_by_a_snapshot_in_the_database(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str, fresh_creds: str
) -> None:
    snaps = PgSnapshots(pool)
    store = AuthStore(
        tmp_path / "s1",
        session_id="s1",
        bridge_dir=tmp_path / ".bridge",
        backend=_backend(pool, "s1"),
        before_creds_downgrade=snaps.downgrade_hook("s1"),
    )
    try:
        store.save_creds(registered_creds)
        store.save_creds(fresh_creds)
    finally:
        store.close()
    (kept,) = snaps.newest_first("s1")
    assert kept.reason == "creds-downgrade" and kept.registered
    creds = kept.entry("creds.json")
    assert creds is not None and snaps.read_object(creds.sha256) == registered_creds.encode()
    assert snaps.latest_good("s1") == kept


def test_the_cluster_snapshot_commands_take_list_verify_and_restore(
    pool: ConnectionPool, fresh_dsn: str, registered_creds: str
) -> None:
    backend = _backend(pool, "s1")
    backend.commit({"creds.json": registered_creds.encode(), "pre-key-1.json": b'"one"'}, [])
    code, taken, err = cli_json(fresh_dsn, "cluster", "snapshot", "s1", "--reason", "before-upgrade")
    assert code == ExitCode.OK and taken["registered"] and taken["reason"] == "before-upgrade", err
    code, listed, _ = cli_json(fresh_dsn, "cluster", "snapshots", "s1")
    assert [m["id"] for m in listed["snapshots"]] == [taken["id"]]

    code, refused, err = cli_json(fresh_dsn, "cluster", "restore", "s1", taken["id"])
    assert code == ExitCode.REFUSED and refused["error"]["code"] == "session_locked" and "node-a" in err
    with pool.connection() as conn:
        assert release_tenant(conn, "s1", "node-a", backend.epoch)

    with pool.connection() as conn:
        conn.execute("UPDATE bridge_snapshot_objects SET data = 'X' WHERE sha256 = %s", (sha256_hex(b'"one"'),))
    code, report, _ = cli_json(fresh_dsn, "cluster", "verify")
    assert code == ExitCode.CHECK_FAILED and [p["kind"] for p in report["problems"]] == ["corrupt"]
    code, _, err = cli_json(fresh_dsn, "cluster", "restore", "s1", taken["id"])
    assert code == ExitCode.CHECK_FAILED and "corrupt" in err

    with pool.connection() as conn:
        conn.execute("UPDATE bridge_snapshot_objects SET data = '\"one\"' WHERE sha256 = %s", (sha256_hex(b'"one"'),))
    assert cli_json(fresh_dsn, "cluster", "verify", "s1")[0] == ExitCode.OK
    with pool.connection() as conn:
        lease = claim_tenant(conn, "s1", "node-a", TTL)
    assert lease is not None
    PgAuthBackend(pool, "s1", node_id="node-a", epoch=lease.epoch).commit({"pre-key-2.json": b'"two"'}, [])
    with pool.connection() as conn:
        release_tenant(conn, "s1", "node-a", lease.epoch)
    code, restored, err = cli_json(fresh_dsn, "cluster", "restore", "s1", taken["id"][:-6])
    assert code == ExitCode.OK and (restored["keys_before"], restored["keys_after"]) == (2, 1), err
    assert backend.read(["pre-key-1.json", "pre-key-2.json"]) == {"pre-key-1.json": b'"one"', "pre-key-2.json": None}
