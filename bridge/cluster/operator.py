"""An operator command's hold on one tenant: the lease taken like a node would, released afterwards.

Commands that write a tenant's auth state outside a running node (`import`, `cluster restore`)
claim the tenant's lease by name under a node id of their own (`<what>:<host>:<pid>`), so their
writes are fenced exactly like a node's: refused while a live node runs the tenant, and a node
that claimed it meanwhile makes them fail with `lease_lost` instead of mixing states.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.leases import add_tenant, claim_tenant, list_leases, release_tenant
from bridge.errors import ErrorCode, StoreError
from bridge.store.layout import validate_session_id

#: Lease of an operator command, long enough for a large folder; released as soon as it is done.
OPERATOR_LEASE_TTL: Final = 300.0


@contextmanager
def operator_hold(pool: ConnectionPool, session_id: str, what: str) -> Iterator[PgAuthBackend]:
    """The tenant's fenced backend, held by this command until the block ends (then released).

    Makes the session a tenant if it is not one. Raises StoreError (`session_locked`) naming the
    owner while a live node runs the tenant; nothing is written then.
    """
    session_id = validate_session_id(session_id)
    node_id = f"{what}:{socket.gethostname()}:{os.getpid()}"
    with pool.connection() as conn:
        add_tenant(conn, session_id)
        lease = claim_tenant(conn, session_id, node_id, OPERATOR_LEASE_TTL)
        if lease is None:
            owner = next((x for x in list_leases(conn) if x.session_id == session_id), None)
            raise StoreError(
                f"session {session_id} runs on node {owner.node_id if owner else '?'}; stop or delete it in the "
                f"cluster first (its lease must be free), then {what} again. Nothing was written.",
                code=ErrorCode.SESSION_LOCKED,
            )
    backend = PgAuthBackend(pool, session_id, node_id=node_id, epoch=lease.epoch)
    try:
        yield backend
    finally:
        backend.close()
        with pool.connection() as conn:
            release_tenant(conn, session_id, node_id, lease.epoch)
