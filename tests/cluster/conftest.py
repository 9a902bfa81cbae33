"""Fixtures of the cluster tests: a real PostgreSQL server per test module (see tests/cluster/pg.py).

- `pg_server`: the module's running `PgServer` (`.dsn`, `.stop()`, `.start()`, `.restart()`).
- `pg_dsn`: its DSN (database `postgres`), shared by every test of the module.
- `fresh_dsn`: a DSN to a new, empty database of that server, dropped after the test, for tests
  that need a schema of their own.
- `pool`: a connection pool on a `fresh_dsn` database with the core cluster schema (leases, auth
  state, snapshots).
- `legacy_written`, `registered_creds`, `fresh_creds`: real Baileys values (tests/store/conftest.py).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.db import open_pool
from bridge.cluster.schema import ensure_schema
from tests.cluster.pg import PgServer, start_server
from tests.cluster.webhook_receiver import Receiver
from tests.store.conftest import fresh_creds, legacy_written, registered_creds

# Real Baileys values (tests/store/node/legacy.mjs), shared with the store tests.
__all__ = ["fresh_creds", "legacy_written", "registered_creds"]

_counter = itertools.count()


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.fail(f"cannot start a test PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def pg_dsn(pg_server: PgServer) -> str:
    return pg_server.dsn


@pytest.fixture
def fresh_dsn(pg_server: PgServer) -> Iterator[str]:
    name = f"t{next(_counter)}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn.rsplit("/", 1)[0] + f"/{name}"
    if pg_server.is_running():
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pool(fresh_dsn: str) -> Iterator[ConnectionPool]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ensure_schema(conn)
    pool = open_pool(fresh_dsn, max_size=8)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP webhook receiver that verifies Standard Webhooks signatures."""
    found = await Receiver().start()
    yield found
    await found.close()
