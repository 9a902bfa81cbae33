"""`python -m bridge import / export / cluster status`: legacy folders in and out of the cluster, byte for byte.

The end-to-end proof: a folder real Baileys linked against the simulator is imported into the
cluster, exported to a new folder, and a plain legacy Baileys process (useMultiFileAuthState) logs
in on the exported folder without a QR.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.db import open_pool
from bridge.cluster.leases import add_tenant, claim_tenant
from bridge.cluster.schema import ensure_schema
from bridge.errors import ExitCode
from tests.cluster.cli_runner import cli_json
from tests.cluster.pg import PgServer
from tests.simulator.client import SimulatorClient
from tests.simulator.driver import baileys, pair_by_qr


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def dsn(fresh_dsn: str) -> str:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ensure_schema(conn)
    return fresh_dsn


@pytest.fixture
def pool(dsn: str) -> Iterator[ConnectionPool]:
    pool = open_pool(dsn, max_size=2)
    try:
        yield pool
    finally:
        pool.close()


def test_import_then_export_gives_back_the_legacy_folder_byte_for_byte(
    dsn: str, tmp_path: Path, legacy_written: tuple[Path, dict[str, Any]]
) -> None:
    source, _texts = legacy_written
    code, imported, err = cli_json(dsn, "import", "t1", str(source))
    assert code == ExitCode.OK, err
    assert imported["files"] == len(os.listdir(source)) and imported["pre_import_snapshot"] is None
    code, exported, err = cli_json(dsn, "export", "t1", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    assert exported["registered"] and exported["owner"] is None
    assert folder_bytes(tmp_path / "out") == folder_bytes(source)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no staging folder left behind"


def test_export_never_writes_into_a_folder_that_holds_anything(
    dsn: str, pool: ConnectionPool, tmp_path: Path, fresh_creds: str
) -> None:
    with pool.connection() as conn:
        add_tenant(conn, "t1")
        lease = claim_tenant(conn, "t1", "node-a", 30.0)
    assert lease is not None
    PgAuthBackend(pool, "t1", node_id="node-a", epoch=lease.epoch).commit({"creds.json": fresh_creds.encode()}, [])
    target = tmp_path / "taken"
    target.mkdir()
    (target / "creds.json").write_text("someone else's")
    code, data, err = cli_json(dsn, "export", "t1", str(target))
    assert code == ExitCode.REFUSED and "not an empty folder" in err
    assert data["error"]["code"] == "conflict"
    assert folder_bytes(target) == {"creds.json": b"someone else's"}
    code, data, err = cli_json(dsn, "export", "t1", str(tmp_path / "running"))
    assert code == ExitCode.OK and data["owner"] == "node-a" and data["owner_live"], err
    code, data, _ = cli_json(dsn, "export", "nobody", str(tmp_path / "x"))
    assert code == ExitCode.NOT_FOUND and not (tmp_path / "x").exists()


def test_a_damaged_folder_imports_nothing(
    dsn: str, pool: ConnectionPool, tmp_path: Path, registered_creds: str
) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "creds.json").write_text(registered_creds)
    (folder / "pre-key-1.json").write_text('{"torn": ')
    code, data, err = cli_json(dsn, "import", "t1", str(folder))
    assert code == ExitCode.ERROR and "pre-key-1.json" in err and "nothing was imported" in err
    (folder / "pre-key-1.json").unlink()
    (folder / "creds.json").write_text(registered_creds[:40])
    code, data, err = cli_json(dsn, "import", "t1", str(folder))
    assert data["error"]["code"] == "creds_corrupt", err
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM bridge_auth_files").fetchone() == (0,)


def test_import_is_refused_while_a_node_runs_the_tenant(
    dsn: str, pool: ConnectionPool, legacy_written: tuple[Path, dict[str, Any]]
) -> None:
    with pool.connection() as conn:
        add_tenant(conn, "t1")
        assert claim_tenant(conn, "t1", "node-a", 30.0) is not None
    code, data, err = cli_json(dsn, "import", "t1", str(legacy_written[0]))
    assert code == ExitCode.REFUSED and "node-a" in err
    assert data["error"]["code"] == "session_locked"


def test_importing_another_account_over_linked_creds_needs_replace_and_keeps_the_old_state(
    dsn: str, tmp_path: Path, legacy_written: tuple[Path, dict[str, Any]], fresh_creds: str
) -> None:
    assert cli_json(dsn, "import", "t1", str(legacy_written[0]))[0] == ExitCode.OK
    other = tmp_path / "other"
    other.mkdir()
    (other / "creds.json").write_text(fresh_creds)
    code, data, err = cli_json(dsn, "import", "t1", str(other))
    assert code == ExitCode.REFUSED and "--replace" in err
    code, data, err = cli_json(dsn, "import", "t1", str(other), "--replace")
    assert code == ExitCode.OK, err
    assert data["pre_import_snapshot"] and data["trashed"] == len(os.listdir(legacy_written[0])) - 1
    code, _, err = cli_json(dsn, "export", "t1", str(tmp_path / "out"))
    assert code == ExitCode.OK and folder_bytes(tmp_path / "out") == {"creds.json": fresh_creds.encode()}


def test_cluster_status_shows_leases_epochs_and_tenants_per_node(dsn: str, pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        for sid in ("t1", "t2", "t3"):
            add_tenant(conn, sid)
        claim_tenant(conn, "t1", "node-a", 30.0)
        claim_tenant(conn, "t2", "node-b", 30.0)
    code, status, err = cli_json(dsn, "cluster", "status")
    assert code == ExitCode.OK, err
    assert status["tenants_per_node"] == {"(unowned)": 1, "node-a": 1, "node-b": 1}
    leases = {x["session"]: x for x in status["leases"]}
    assert (leases["t1"]["node"], leases["t1"]["epoch"], leases["t1"]["live"]) == ("node-a", 1, True)
    assert (leases["t3"]["node"], leases["t3"]["epoch"]) == (None, 0)
    assert status["schema"]["core"] >= 1


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path, pg_server: PgServer) -> None:
    code, data, err = cli_json(f"postgresql://postgres@127.0.0.1:{pg_server.port + 1}/x", "cluster", "status")
    assert code == ExitCode.ERROR and data["error"]["code"] == "cluster_unavailable"
    assert "BRIDGE_CLUSTER_DSN" in err


async def test_an_exported_tenant_logs_in_with_plain_legacy_baileys_and_no_qr(
    simulator: SimulatorClient, dsn: str, tmp_path: Path
) -> None:
    phone = "15550300001"
    linked = tmp_path / "linked"
    async with baileys(simulator, linked) as first:
        opened = await pair_by_qr(simulator, first, phone)
    assert cli_json(dsn, "import", "tenant-1", str(linked))[0] == ExitCode.OK
    exported = tmp_path / "exported"
    code, report, err = cli_json(dsn, "export", "tenant-1", str(exported))
    assert code == ExitCode.OK and report["registered"], err
    assert folder_bytes(exported) == folder_bytes(linked)

    async with baileys(simulator, exported) as legacy:
        again = await legacy.wait_for(lambda e: e.get("connection") in ("open", "close"))
        assert again["connection"] == "open", again
        assert again["me"]["id"] == opened["me"]["id"]
        assert not any(e.get("qr") for e in legacy.events), "the exported folder must not ask for a QR"
