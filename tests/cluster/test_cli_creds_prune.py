"""`python -m bridge cluster creds-history / restore-creds / prune`, run as real processes against real
PostgreSQL: the history is listed without the creds, an entry goes back as creds.json only while no
node runs the tenant (the replaced creds stay in the history), a prefix that names no single valid
entry is refused with nothing written, and one retention pass runs on demand (dry run first), or
says another node is pruning.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.creds_history import PgCredsHistory
from bridge.cluster.leases import add_tenant, claim_tenant, list_leases, release_tenant
from bridge.cluster.retention import RETENTION_LOCK_KEY
from bridge.cluster.snapshots import PgSnapshots
from bridge.errors import ExitCode
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots.objects import sha256_hex
from tests.cluster.cli_runner import cli, cli_json
from tests.cluster.pg import PgServer

TTL = 30.0


def _gen(base: str, counter: int) -> bytes:
    """A later generation of the same creds (Baileys bumps counters like this on creds.update)."""
    return json.dumps(dict(json.loads(base), accountSyncCounter=counter)).encode()


def _backend(pool: ConnectionPool, sid: str, node: str = "node-a") -> PgAuthBackend:
    with pool.connection() as conn:
        add_tenant(conn, sid)
        lease = claim_tenant(conn, sid, node, TTL)
    assert lease is not None
    return PgAuthBackend(pool, sid, node_id=node, epoch=lease.epoch)


def _release(pool: ConnectionPool, backend: PgAuthBackend) -> None:
    with pool.connection() as conn:
        assert release_tenant(conn, backend.session_id, backend.node_id, backend.epoch)
    backend.close()


def _secrets(creds_text: str) -> list[str]:
    """Every long string value in a creds text (keys, tokens): none may appear in a listing."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and len(value) >= 20:
            found.append(value)

    walk(json.loads(creds_text))
    return found


def _creds_now(pool: ConnectionPool, sid: str) -> bytes | None:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT data FROM bridge_auth_files WHERE session_id = %s AND name = %s", (sid, CREDS_FILE)
        ).fetchone()
    return None if row is None else bytes(row[0])


def test_creds_history_lists_without_the_creds_and_restore_creds_puts_an_entry_back_keeping_the_replaced_one(
    pool: ConnectionPool, fresh_dsn: str, registered_creds: str, fresh_creds: str
) -> None:
    backend = _backend(pool, "t1")
    linked = [_gen(registered_creds, n) for n in range(2)]
    for text in linked:
        backend.commit({CREDS_FILE: text}, [])
    backend.commit({CREDS_FILE: fresh_creds.encode(), "pre-key-1.json": b'{"k":1}'}, [])

    code, out, err = cli(fresh_dsn, "cluster", "creds-history", "t1")
    assert code == ExitCode.OK, err
    listed = json.loads(out)
    assert [e["sha256"] for e in listed["entries"]] == [sha256_hex(fresh_creds.encode())] + [
        sha256_hex(t) for t in reversed(linked)
    ]
    assert [(e["valid"], e["registered"], e["node"]) for e in listed["entries"]] == [
        (True, False, "node-a"),
        (True, True, "node-a"),
        (True, True, "node-a"),
    ]
    assert listed["entries"][1]["account"] and listed["entries"][0]["account"] is None
    assert all(e["short"] == e["sha256"][:12] and e["kept_iso"] for e in listed["entries"])
    code, human, _ = cli(fresh_dsn, "cluster", "creds-history", "t1", as_json=False)
    assert code == ExitCode.OK and "3 creds history entries" in human and listed["entries"][1]["short"] in human
    for secret in _secrets(registered_creds) + _secrets(fresh_creds):
        assert secret not in out and secret not in human

    wanted = listed["entries"][2]["short"]  # the first linked generation
    code, refused, err = cli_json(fresh_dsn, "cluster", "restore-creds", "t1", wanted)
    assert code == ExitCode.REFUSED and refused["error"]["code"] == "session_locked" and "node-a" in err
    assert _creds_now(pool, "t1") == fresh_creds.encode()
    _release(pool, backend)

    code, restored, err = cli_json(fresh_dsn, "cluster", "restore-creds", "t1", wanted[:8])
    assert code == ExitCode.OK, err
    assert restored["restored"]["sha256"] == sha256_hex(linked[0])
    assert restored["replaced_sha256"] == sha256_hex(fresh_creds.encode())
    assert _creds_now(pool, "t1") == linked[0]
    after = PgCredsHistory(pool).entries("t1")
    assert after[0].data == linked[0] and fresh_creds.encode() in [e.data for e in after]
    assert PgAuthBackend(pool, "t1", node_id="reader", epoch=0).read(["pre-key-1.json"]) == {
        "pre-key-1.json": b'{"k":1}'
    }
    with pool.connection() as conn:
        lease = next(x for x in list_leases(conn) if x.session_id == "t1")
    assert not lease.live, "restore-creds released the tenant"
    code, out, err = cli(fresh_dsn, "cluster", "restore-creds", "t1", wanted, as_json=False)
    assert code == ExitCode.OK and "current creds already" in out, err


def test_restore_creds_refuses_what_names_no_single_valid_entry_and_writes_nothing(
    pool: ConnectionPool, fresh_dsn: str, registered_creds: str
) -> None:
    backend = _backend(pool, "t1")
    generations = [_gen(registered_creds, n) for n in range(17)]  # 17 > 16 hex digits: two share a first digit
    for text in generations:
        backend.commit({CREDS_FILE: text}, [])
    broken = b'{"noiseKey": '
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO bridge_creds_history (session_id, sha256, seq, data, epoch, node_id) "
            "VALUES ('t1', %s, 0, %s, 1, 'node-a')",
            (sha256_hex(broken), broken),
        )
    _release(pool, backend)
    shas = [sha256_hex(t) for t in generations]
    shared = next(s[0] for s in shas if sum(o.startswith(s[0]) for o in shas) > 1)
    absent = next(c for c in "0123456789abcdef" * 4 if not any(s.startswith(c) for s in shas))
    before = _creds_now(pool, "t1")

    cases = {
        ("t1", shared): (ExitCode.USAGE, "bad_request", "give more digits"),
        ("t1", "not-hex"): (ExitCode.USAGE, "bad_request", "not a sha256 prefix"),
        ("t1", sha256_hex(b"never kept")): (ExitCode.NOT_FOUND, "not_found", "no entry"),
        ("t1", sha256_hex(broken)[:10]): (ExitCode.ERROR, "creds_corrupt", "does not hold valid creds"),
        ("nobody", absent): (ExitCode.NOT_FOUND, "session_not_found", "not a tenant"),
        ("../t1", absent): (ExitCode.USAGE, "hostile_name", "invalid session id"),
    }
    for (sid, prefix), (exit_code, error_code, words) in cases.items():
        code, data, err = cli_json(fresh_dsn, "cluster", "restore-creds", sid, prefix)
        assert (code, data["error"]["code"]) == (exit_code, error_code), (sid, prefix, err)
        assert words in err and "Traceback" not in err, err
    assert _creds_now(pool, "t1") == before
    with pool.connection() as conn:
        assert [x.session_id for x in list_leases(conn)] == ["t1"], "a refused command made no tenant"
    code, data, err = cli_json(fresh_dsn, "cluster", "creds-history", "nobody")
    assert (code, data["error"]["code"]) == (ExitCode.NOT_FOUND, "session_not_found"), err


def test_cluster_prune_reports_a_dry_run_then_removes_and_says_when_another_node_is_pruning(
    pool: ConnectionPool, fresh_dsn: str, fresh_creds: str
) -> None:
    snaps, backend = PgSnapshots(pool), _backend(pool, "t1")
    backend.commit({CREDS_FILE: fresh_creds.encode(), "pre-key-0.json": b'{"k":0}'}, [])
    made = [snaps.create("t1")]
    for n in range(1, 4):
        backend.commit({f"pre-key-{n}.json": f'{{"k":{n}}}'.encode()}, [f"pre-key-{n - 1}.json"])
        made.append(snaps.create("t1"))
    _release(pool, backend)
    with pool.connection() as conn:
        conn.execute(
            "UPDATE bridge_auth_trash SET trashed_at = now() - interval '31 days' WHERE name = 'pre-key-0.json'"
        )
    keep_one = ("--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0")

    code, planned, err = cli_json(fresh_dsn, "cluster", "prune", "--dry-run", *keep_one)
    assert code == ExitCode.OK and planned["ran"] and planned["dry_run"], err
    assert planned["snapshots_removed"] == [f"t1/{m.id}" for m in reversed(made[:3])]
    assert (planned["trash_removed"], planned["snapshots_kept"]) == (1, 1)
    assert len(snaps.newest_first("t1")) == 4, "a dry run removes nothing"

    with psycopg.connect(fresh_dsn, autocommit=True) as other_node:
        other_node.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
        code, out, err = cli(fresh_dsn, "cluster", "prune", *keep_one, as_json=False)
        assert code == ExitCode.REFUSED and "another node is pruning" in out, err
        code, report, _ = cli_json(fresh_dsn, "cluster", "prune", *keep_one)
        assert code == ExitCode.REFUSED and report["ran"] is False
    assert len(snaps.newest_first("t1")) == 4

    code, out, err = cli(fresh_dsn, "cluster", "prune", *keep_one, as_json=False)
    assert code == ExitCode.OK, err
    assert "removed 3 snapshot(s)" in out and "removed 1 trashed key(s) older than 30 days" in out
    assert [m.id for m in snaps.newest_first("t1")] == [made[-1].id]
    assert snaps.verify(session_id="t1").ok, "the kept snapshot's objects stayed"

    code, again, err = cli_json(fresh_dsn, "cluster", "prune")  # the hourly pass's defaults
    assert code == ExitCode.OK and again["snapshots_removed"] == [] and again["trash_removed"] == 0, err
    keep_none = ("--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "0")
    code, data, err = cli_json(fresh_dsn, "cluster", "prune", *keep_none)
    assert (code, data["error"]["code"]) == (ExitCode.USAGE, "bad_policy"), err


def test_without_a_reachable_database_the_commands_say_so_without_a_traceback(pg_server: PgServer) -> None:
    code, data, err = cli_json(None, "cluster", "creds-history", "t1")
    assert (code, data["error"]["code"]) == (ExitCode.ERROR, "config_error") and "BRIDGE_CLUSTER_DSN" in err
    unreachable = f"postgresql://postgres@127.0.0.1:{pg_server.port + 1}/x"
    code, data, err = cli_json(unreachable, "cluster", "prune", "--dry-run")
    assert (code, data["error"]["code"]) == (ExitCode.ERROR, "cluster_unavailable"), err
    assert "Traceback" not in err
