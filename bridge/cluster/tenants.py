"""The cluster's tenants: the registry's records in PostgreSQL (`cluster_sessions`) instead of
`.bridge/sessions.json`, so every node sees the same tenants and their desired state.

`PgRecords` is the registry's `RecordStore` in cluster mode (bridge/sessions/registry.py). Reads
return every row. A write is fenced like an auth write: it commits only while the lease row of
that tenant names this node with the epoch this node holds (`epoch_of`), so a node paused past its
lease cannot, once it resumes, record a state (failed after "conflict: replaced", desired running
false) over the new owner's. A refused write raises `LeaseLostError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import psycopg
from psycopg_pool import ConnectionPool

from bridge.cluster.db import LeaseLostError, with_retry
from bridge.errors import SessionError
from bridge.sessions.registry import SessionRecord

COMPONENT: Final = "tenants"
MIGRATIONS: Final[Sequence[str]] = (
    """
    CREATE TABLE cluster_sessions (
        session_id text PRIMARY KEY,
        record     jsonb NOT NULL,
        archived   boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """,
)
#: How long a registry write waits for an unreachable database before failing (s).
WRITE_BOUND: Final = 10.0


class PgRecords:
    """`RecordStore` on `cluster_sessions`, fenced by this node's leases (see module docstring)."""

    def __init__(self, pool: ConnectionPool, node_id: str, epoch_of: Callable[[str], int | None]) -> None:
        self.pool = pool
        self.node_id = node_id
        self.epoch_of = epoch_of

    def read_all(self) -> dict[str, SessionRecord]:
        def step(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
            return conn.execute("SELECT session_id, record::text FROM cluster_sessions").fetchall()

        rows = with_retry(self.pool, step, what="reading the cluster's sessions", bound=WRITE_BOUND)
        records: dict[str, SessionRecord] = {}
        for session_id, text in rows:
            try:
                records[str(session_id)] = msgspec.json.decode(str(text), type=SessionRecord)
            except msgspec.DecodeError as exc:
                raise SessionError(f"the cluster's record of session {session_id} is unreadable ({exc}); fix the "
                                   "row in cluster_sessions by hand") from exc
        return records

    def write(self, record: SessionRecord, records: dict[str, SessionRecord]) -> None:
        epoch = self.epoch_of(record.id)
        if epoch is None:
            raise LeaseLostError(f"session {record.id}: this node holds no lease on it, so it may not change its "
                                 "record; the owner node does")
        data = msgspec.json.encode(record).decode()

        def step(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
            row = conn.execute(
                """INSERT INTO cluster_sessions (session_id, record, archived)
                   SELECT %(id)s, %(record)s::jsonb, %(archived)s
                   WHERE EXISTS (SELECT 1 FROM bridge_leases
                                 WHERE session_id = %(id)s AND node_id = %(node)s AND epoch = %(epoch)s)
                   ON CONFLICT (session_id) DO UPDATE
                     SET record = EXCLUDED.record, archived = EXCLUDED.archived, updated_at = now()
                   RETURNING 1""",
                {"id": record.id, "record": data, "archived": record.archived, "node": self.node_id,
                 "epoch": epoch},
            ).fetchone()
            return row is not None

        if not with_retry(self.pool, step, what=f"recording session {record.id}", bound=WRITE_BOUND):
            raise LeaseLostError(f"session {record.id}: the lease of epoch {epoch} is no longer this node's; the "
                                 "record was not changed (the new owner's stands)")
