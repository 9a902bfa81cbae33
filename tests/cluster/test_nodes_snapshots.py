"""What a cluster node's sessions see as their snapshots (bridge/cluster/session_snapshots.py): the
tenant's rows, never the node's empty folder. Linked creds are offered for a restore only when the
database lost the tenant's creds; a downgrade snapshot holds the linked creds; restore is fenced."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.db import LeaseLostError
from bridge.cluster.leases import add_tenant, claim_tenant
from bridge.cluster.session_snapshots import SessionSnapshots
from bridge.store.layout import CREDS_FILE

NODE = "node-a"


def _claim(pool: ConnectionPool, session_id: str) -> int:
    with pool.connection() as conn:
        add_tenant(conn, session_id)
        lease = claim_tenant(conn, session_id, NODE, 30.0)
    assert lease is not None
    return lease.epoch


def test_linked_creds_are_offered_for_a_restore_only_when_the_database_lost_the_tenants_creds(
    pool: ConnectionPool, registered_creds: str
) -> None:
    epoch = _claim(pool, "t1")
    PgAuthBackend(pool, "t1", node_id=NODE, epoch=epoch).commit({CREDS_FILE: registered_creds.encode()}, [])
    snaps = SessionSnapshots(pool, NODE, {"t1": epoch}.get)
    made = snaps.create("t1", "creds-downgrade")

    assert made.registered and snaps.latest("t1", registered=True) == made
    assert snaps.list("t1") == [made] and snaps.verify(made).ok and snaps.verify(session_id="t1").ok
    assert snaps.latest_good("t1", registered=True) is None  # creds are there: nothing to restore over them

    with pool.connection() as conn:  # the tenant's creds vanish from the database (an operator's DELETE)
        conn.execute("DELETE FROM bridge_auth_files WHERE session_id = 't1' AND name = %s", (CREDS_FILE,))
    found = snaps.latest_good("t1", registered=True)
    assert found is not None and found.id == made.id

    assert snaps.restore("t1", made.id).id == made.id
    assert PgAuthBackend(pool, "t1", node_id=NODE, epoch=epoch).read([CREDS_FILE])[CREDS_FILE] == \
        registered_creds.encode()


def test_a_node_without_the_lease_cannot_restore(pool: ConnectionPool, registered_creds: str) -> None:
    epoch = _claim(pool, "t2")
    PgAuthBackend(pool, "t2", node_id=NODE, epoch=epoch).commit({CREDS_FILE: registered_creds.encode()}, [])
    made = SessionSnapshots(pool, NODE, {"t2": epoch}.get).create("t2")

    with pytest.raises(LeaseLostError):
        SessionSnapshots(pool, "node-b", {}.get).restore("t2", made.id)
    with pytest.raises(LeaseLostError):
        SessionSnapshots(pool, NODE, {"t2": epoch - 1}.get).restore("t2", made.id)
