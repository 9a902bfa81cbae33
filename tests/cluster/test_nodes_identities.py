"""The identity book of cluster mode (`PgIdentities`): one record per tenant in the database, so a
tenant relinked on one node is checked against its new identity on every node; writes are fenced
by the lease like every other write of a tenant."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster import tenants
from bridge.cluster.db import LeaseLostError, open_pool
from bridge.cluster.leases import add_tenant, claim_tenant
from bridge.cluster.schema import ensure_schema
from bridge.store.identity import Identity


@pytest.fixture
def pool(fresh_dsn: str) -> Iterator[ConnectionPool]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ensure_schema(conn)
        ensure_schema(conn, tenants.COMPONENT, tenants.MIGRATIONS)
    pool = open_pool(fresh_dsn, max_size=4)
    try:
        yield pool
    finally:
        pool.close()


def _claim(pool: ConnectionPool, session: str, node: str) -> int:
    with pool.connection() as conn:
        add_tenant(conn, session)
        conn.execute("UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '0 seconds' "
                     "WHERE session_id = %s AND node_id IS NOT NULL", (session,))
        lease = claim_tenant(conn, session, node, 30.0)
    assert lease is not None
    return lease.epoch


def test_an_identity_recorded_on_one_node_is_what_every_node_checks_and_a_relink_replaces_it(
    pool: ConnectionPool,
) -> None:
    old, new = Identity(key="aaaa", jid="15550001@s.whatsapp.net"), Identity(key="bbbb", jid="15550001@s.whatsapp.net")
    on_a = tenants.PgIdentities(pool, "a", {"t": _claim(pool, "t", "a")}.get)
    on_a.record("t", old)
    on_b = tenants.PgIdentities(pool, "b", {"t": _claim(pool, "t", "b")}.get)  # the tenant moved to node b

    assert on_b.expected("t") == old
    on_b.record("t", new)  # relinked on node b
    assert on_a.expected("t") == new  # node a, taking it back later, checks against the new identity
    assert on_a.owner_of(new) == "t" and on_a.owner_of(new, excluding="t") is None

    with pytest.raises(LeaseLostError):
        on_a.record("t", old)  # node a's epoch is stale: refused, nothing changed
    assert on_b.expected("t") == new
    with pytest.raises(LeaseLostError):
        tenants.PgIdentities(pool, "c", {}.get).record("t", old)
