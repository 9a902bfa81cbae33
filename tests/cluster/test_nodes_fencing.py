"""A node's view of its tenants' auth state (`FencedBackend` over the real `PgAuthBackend`): the
first write refused as stale tells the coordinator once and closes the backend for good, and a
session cannot even start (read creds) on a node whose lease is no longer live."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.coordinator import FencedBackend, holds_live
from bridge.cluster.db import LeaseLostError
from bridge.cluster.leases import add_tenant, claim_tenant
from bridge.store.layout import CREDS_FILE

KEY = "pre-key-1.json"


def _claim(pool: ConnectionPool, node: str) -> int:
    with pool.connection() as conn:
        add_tenant(conn, "t")
        lease = claim_tenant(conn, "t", node, 30.0)
    assert lease is not None
    return lease.epoch


def _expire(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '0 seconds'")


def _fenced(pool: ConnectionPool, node: str, epoch: int, lost: list[str]) -> FencedBackend:
    def confirm() -> bool:
        with pool.connection() as conn:
            return holds_live(conn, "t", node, epoch)

    return FencedBackend(PgAuthBackend(pool, "t", node_id=node, epoch=epoch), lost.append, confirm)


def test_a_stale_write_is_refused_reported_once_and_everything_after_it_is_refused_too(pool: ConnectionPool) -> None:
    lost: list[str] = []
    old = _fenced(pool, "a", _claim(pool, "a"), lost)
    old.commit({KEY: b'{"k": 1}'}, [])
    _expire(pool)
    new_epoch = _claim(pool, "b")  # another node takes the tenant after the lease expired

    with pytest.raises(LeaseLostError):
        old.commit({KEY: b'{"k": 2}'}, [])
    with pytest.raises(LeaseLostError):
        old.read([KEY])
    with pytest.raises(LeaseLostError):
        old.commit({KEY: b'{"k": 3}'}, [])
    assert len(lost) == 1 and "stale" in lost[0]
    assert PgAuthBackend(pool, "t", node_id="b", epoch=new_epoch).read([KEY])[KEY] == b'{"k": 1}'


def test_a_session_cannot_start_on_a_node_whose_lease_is_not_live(pool: ConnectionPool) -> None:
    lost: list[str] = []
    epoch = _claim(pool, "a")
    backend = _fenced(pool, "a", epoch, lost)
    assert backend.read([CREDS_FILE]) == {CREDS_FILE: None}  # live lease: the start may read creds

    _expire(pool)  # nobody took it yet, but the lease is no longer live
    with pytest.raises(LeaseLostError):
        backend.read([CREDS_FILE])
    assert len(lost) == 1
