"""The nodes of a cluster: who is alive and where its internal API listens.

Each bridge in cluster mode keeps one row in `cluster_nodes`: its node id, the URL other nodes
forward requests to, and a heartbeat whose expiry is computed by the database (`now()` plus the
lease TTL), never by the writer's own clock. A node is alive while its row has not expired in
the database's clock; a node that died (kill -9, power loss) simply stops renewing, and every
other node sees it dead once the TTL has passed. A node that stops cleanly deletes its row.

The coordinator uses the live nodes for the fair share (ceil(tenants / live nodes)); the
forwarder uses the URL of a tenant's owner. All functions are synchronous (one SQL statement
each, autocommit) and are run in a thread by their async callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import psycopg
from psycopg.rows import TupleRow

from bridge.cluster import schema

Conn = psycopg.Connection[TupleRow]

COMPONENT: Final = "nodes"
MIGRATIONS: Final[Sequence[str]] = (
    """
    CREATE TABLE cluster_nodes (
        node_id      text PRIMARY KEY,
        url          text NOT NULL,
        started_at   timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL
    );
    """,
)


class NodeInfo(msgspec.Struct, frozen=True):
    """One row of `cluster_nodes` as seen at the database's `now()`.

    `expires_in`: seconds until the heartbeat expires (negative: expired that long ago)."""

    node_id: str
    url: str
    started_at: float
    heartbeat_at: float
    expires_in: float

    @property
    def alive(self) -> bool:
        return self.expires_in > 0


def ensure_schema(conn: Conn) -> None:
    """Create `cluster_nodes` (component "nodes" of bridge/cluster/schema.py; idempotent)."""
    schema.ensure_schema(conn, COMPONENT, MIGRATIONS)


def register(conn: Conn, node_id: str, url: str, ttl: float) -> None:
    """Announce this node (or take its row back after a restart) with a fresh heartbeat."""
    conn.execute(
        """INSERT INTO cluster_nodes (node_id, url, expires_at)
           VALUES (%s, %s, now() + make_interval(secs => %s))
           ON CONFLICT (node_id) DO UPDATE
             SET url = EXCLUDED.url, started_at = now(), heartbeat_at = now(), expires_at = EXCLUDED.expires_at""",
        (node_id, url, ttl),
    )


def heartbeat(conn: Conn, node_id: str, ttl: float) -> bool:
    """Extend this node's heartbeat; False when its row is gone (someone removed it: register again)."""
    cur = conn.execute(
        "UPDATE cluster_nodes SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %s) "
        "WHERE node_id = %s",
        (ttl, node_id),
    )
    return cur.rowcount == 1


def leave(conn: Conn, node_id: str) -> None:
    """Remove this node's row (clean stop): others stop counting it at once."""
    conn.execute("DELETE FROM cluster_nodes WHERE node_id = %s", (node_id,))


def all_nodes(conn: Conn) -> list[NodeInfo]:
    """Every node row, alive or not, sorted by node id."""
    rows = conn.execute(
        """SELECT node_id, url, extract(epoch FROM started_at)::float8, extract(epoch FROM heartbeat_at)::float8,
                  extract(epoch FROM expires_at - now())::float8
           FROM cluster_nodes ORDER BY node_id"""
    ).fetchall()
    return [NodeInfo(str(r[0]), str(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]


def live_nodes(conn: Conn) -> list[NodeInfo]:
    """The nodes whose heartbeat has not expired (database clock)."""
    return [n for n in all_nodes(conn) if n.alive]


def url_of(conn: Conn, node_id: str) -> str | None:
    """The internal URL of a live node (None: unknown or dead)."""
    row = conn.execute(
        "SELECT url FROM cluster_nodes WHERE node_id = %s AND expires_at > now()", (node_id,)
    ).fetchone()
    return str(row[0]) if row is not None else None
