"""The cluster database's tables, created and upgraded in numbered steps, safely from many nodes at once.

Each part of cluster mode is a *component* with its own ordered list of migrations (`CORE`: leases,
auth state, snapshots, the creds history; clusternode's nodes and events bring their own lists). `bridge_schema`
remembers the version each component reached. `ensure_schema` runs inside one transaction holding
a transaction-level advisory lock, so when three nodes start together exactly one creates the
tables and the others wait, then see them and do nothing. Migrations only add; a database whose
component version is newer than this code knows is refused (an older bridge must not write a
newer schema).

Time columns are filled by the database's clock (`now()`), never a node's: lease expiry compares
times written by different machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import psycopg
from psycopg.rows import TupleRow

from bridge.errors import ConfigError

#: Arbitrary constant naming the advisory lock that serialises schema changes (ASCII "bridgesc").
ADVISORY_LOCK_KEY: Final = 0x6272696467657363

Migration = str

CORE_COMPONENT: Final = "core"
#: `CORE[i]` takes component "core" from version i to i + 1. Append only; never edit a released step.
CORE: Final[Sequence[Migration]] = (
    """
    CREATE TABLE bridge_leases (
        session_id  text PRIMARY KEY,
        node_id     text,
        epoch       bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
        ttl         interval,
        expires_at  timestamptz,
        acquired_at timestamptz,
        renewed_at  timestamptz,
        created_at  timestamptz NOT NULL DEFAULT now(),
        CHECK ((node_id IS NULL) = (expires_at IS NULL))
    );
    CREATE INDEX bridge_leases_node ON bridge_leases (node_id);
    CREATE TABLE bridge_auth_files (
        session_id text NOT NULL,
        name       text NOT NULL,
        data       bytea NOT NULL,
        epoch      bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, name)
    );
    CREATE TABLE bridge_auth_trash (
        id         bigserial PRIMARY KEY,
        session_id text NOT NULL,
        name       text NOT NULL,
        data       bytea NOT NULL,
        epoch      bigint NOT NULL,
        trashed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX bridge_auth_trash_session ON bridge_auth_trash (session_id, trashed_at);
    CREATE TABLE bridge_snapshot_objects (
        sha256     text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        data       bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE bridge_snapshot_manifests (
        session_id text NOT NULL,
        id         text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        reason     text NOT NULL,
        registered boolean NOT NULL,
        manifest   bytea NOT NULL,
        PRIMARY KEY (session_id, id)
    );
    """,
    """
    CREATE SEQUENCE bridge_creds_history_seq;
    CREATE TABLE bridge_creds_history (
        session_id text NOT NULL,
        sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        seq        bigint NOT NULL,
        data       bytea NOT NULL,
        epoch      bigint NOT NULL,
        node_id    text NOT NULL,
        kept_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, sha256)
    );
    CREATE INDEX bridge_creds_history_order ON bridge_creds_history (session_id, seq);
    """,
    """
    CREATE INDEX bridge_auth_trash_age ON bridge_auth_trash (trashed_at);
    """,
)

_CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS bridge_schema (
    component  text PRIMARY KEY,
    version    integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


def ensure_schema(
    conn: psycopg.Connection[TupleRow], component: str = CORE_COMPONENT, migrations: Sequence[Migration] = CORE
) -> int:
    """Bring `component` to version `len(migrations)`; returns the version found before. Idempotent.

    Safe to call from many nodes at the same moment (advisory lock). Raises `ConfigError` when the
    database holds a newer version than `migrations` knows.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(_CREATE_VERSIONS)
        row = conn.execute("SELECT version FROM bridge_schema WHERE component = %s", (component,)).fetchone()
        found = 0 if row is None else int(row[0])
        if found > len(migrations):
            raise ConfigError(
                f"the cluster database holds schema {component!r} version {found}, newer than this bridge knows "
                f"({len(migrations)}); upgrade this bridge before it joins the cluster"
            )
        for step in migrations[found:]:
            conn.execute(step.encode())
        if found < len(migrations):
            conn.execute(
                "INSERT INTO bridge_schema (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = now()",
                (component, len(migrations)),
            )
    return found


def schema_versions(conn: psycopg.Connection[TupleRow]) -> dict[str, int]:
    """Every component's version (empty when the schema was never created)."""
    row = conn.execute("SELECT to_regclass('bridge_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return {}
    return {str(c): int(v) for c, v in conn.execute("SELECT component, version FROM bridge_schema").fetchall()}
