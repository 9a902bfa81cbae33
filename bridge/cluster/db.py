"""Connections to the cluster database and the two errors every cluster caller must handle.

Pools, not single connections: the auth backend is called from many worker threads at once
(`asyncio.to_thread`), the lease loop from the event loop. After a database restart the pooled
connections are broken: the asynchronous pool checks each connection before lending it (one
round trip, fine every few seconds); the synchronous pool, on the auth write path, does not (it
would double the round trips of a single-key write) and relies on `with_retry` instead: a step that
fails on a broken connection returns it to the pool, which discards it, and the retry takes the next.

`ClusterUnavailableError` (code `cluster_unavailable`): the database could not be reached within
the caller's bound; nothing was written. `LeaseLostError` (code `lease_lost`): the writer's epoch
is not the tenant's current epoch (another node owns it now, or the lease was released); nothing
was written and the tenant must stop on this node at once. Both are `StoreError`s, so `AuthStore`
passes them up with their code (`exc.code`) intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from bridge.errors import ErrorCode, StoreError

#: How long a pool waits for a connection before the caller's retry loop takes over (s).
CONNECT_TIMEOUT: Final = 5.0

T = TypeVar("T")


class ClusterUnavailableError(StoreError):
    """The cluster database did not answer within the bound; nothing was written."""

    code: str = ErrorCode.CLUSTER_UNAVAILABLE


class LeaseLostError(StoreError):
    """The writer's lease epoch is stale: another node owns the tenant now. Stop the tenant here."""

    code: str = ErrorCode.LEASE_LOST


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    host = info.get("host", "localhost")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 8, name: str = "bridge") -> ConnectionPool:
    """An open synchronous pool (worker threads: auth backend, CLI). Raises `ClusterUnavailableError`."""
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        timeout=CONNECT_TIMEOUT,
        kwargs={"autocommit": True},
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        pool.close()
        raise ClusterUnavailableError(
            f"cannot connect to the cluster database {redact(dsn)}: {exc}. Check BRIDGE_CLUSTER_DSN and that "
            "PostgreSQL is running and reachable."
        ) from exc
    return pool


async def open_async_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 4, name: str = "bridge-async"
) -> AsyncConnectionPool:
    """An open asynchronous pool (event loop: leases, events). Raises `ClusterUnavailableError`."""
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        timeout=CONNECT_TIMEOUT,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True},
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        await pool.close()
        raise ClusterUnavailableError(
            f"cannot connect to the cluster database {redact(dsn)}: {exc}. Check BRIDGE_CLUSTER_DSN and that "
            "PostgreSQL is running and reachable."
        ) from exc
    return pool


def is_connection_fault(exc: BaseException) -> bool:
    """True for errors that mean "the database is unreachable or restarting", worth a retry."""
    return isinstance(exc, (psycopg.OperationalError, PoolTimeout)) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


def with_retry(
    pool: ConnectionPool, step: Callable[[psycopg.Connection[TupleRow]], T], *, what: str, bound: float
) -> T:
    """Run `step(connection)` and retry it while the database is unreachable, for at most `bound` seconds.

    `step` must be idempotent (it may have committed before the connection broke). Past the bound
    it raises `ClusterUnavailableError` naming `what`.
    """
    deadline = time.monotonic() + bound
    pause = 0.1
    while True:
        try:
            with pool.connection() as conn:
                return step(conn)
        except Exception as exc:
            if not is_connection_fault(exc):
                raise
            if time.monotonic() >= deadline:
                raise ClusterUnavailableError(
                    f"{what}: the cluster database did not answer for {bound:.0f} s ({exc}); nothing was written"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
