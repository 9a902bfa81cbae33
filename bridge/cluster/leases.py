"""Which node runs which tenant: one lease row per tenant, its epoch the fencing token.

API contract (everything below is decided by the database, in one statement each, on its clock):

- A *tenant* is a row of `bridge_leases` (`add_tenants`); rows are never deleted, so a tenant's
  `epoch` only ever grows (starts at 0 = never owned).
- `claim(limit)` takes up to `limit` tenants that are unowned or whose lease has expired, for this
  node: each claimed tenant's epoch becomes epoch + 1 and `expires_at` = `now()` + ttl. Concurrent
  claims by several nodes never take the same tenant twice (`FOR UPDATE SKIP LOCKED`: a node
  skips rows another transaction holds instead of waiting). The fair share (`limit`) is the
  caller's business. `claim(limit, only=[...])` claims named tenants and *waits* for a row held by
  an in-flight fenced write (one statement long), then re-checks it: a skipped row is only
  retried on the next round, and a stale owner writing in a tight loop could otherwise keep a
  tenant from ever being claimed by name.
- `renew(held)` extends, in one statement, every lease of `held` (session -> epoch) that this node
  still holds *with that epoch* (expired or not: while nobody else claimed it, it is still ours).
  The result says which were renewed and which are lost; a lost tenant must stop at once.
- `release(held)` gives tenants back (node and expiry cleared, epoch kept) so another node may
  claim them at once: the SIGTERM handover. Only leases held with the given epoch are released.
- `owner(session)` and `list()` read the table with a `live` flag computed by the database.
- Writes of a tenant's shared state (auth files, snapshots) are fenced: they commit only if the
  lease row still names the writer's node and epoch (`bridge.cluster.auth_backend`), so a node
  that was paused past its lease and resumes can never overwrite the new owner's state.
- Database downtime is not counted against a holder: a lease is claimable only when it expired
  AND at least its ttl has passed since the database (re)started (`pg_postmaster_start_time()`),
  so after a database restart the current holders get one ttl to renew before anyone may claim.

All methods raise `ClusterUnavailableError` when the database cannot be reached; the caller's loop
retries on its next tick (a node that cannot renew for a ttl must assume its leases lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

from bridge.cluster.db import ClusterUnavailableError, is_connection_fault
from bridge.store.layout import validate_session_id

_CLAIMABLE: Final = "(l.node_id IS NULL OR (l.expires_at <= now() AND pg_postmaster_start_time() + l.ttl <= now()))"
_COLUMNS: Final = "l.session_id, l.node_id, l.epoch, l.expires_at, (l.node_id IS NOT NULL AND l.expires_at > now())"


@dataclass(frozen=True)
class Lease:
    """One tenant's lease row. `live`: owned and not expired, by the database's clock at reading time."""

    session_id: str
    node_id: str | None
    epoch: int
    expires_at: datetime | None
    live: bool


@dataclass(frozen=True)
class RenewResult:
    """What `renew` did: leases extended (with their new expiry) and tenants this node lost."""

    renewed: list[Lease]
    lost: list[str]


def _claim_query(only: Sequence[str] | None) -> str:
    """The claim statement (see the module docstring for why named claims wait and others skip)."""
    if only is None:
        restrict, order, lock = "", "l.expires_at NULLS FIRST, l.session_id", "FOR UPDATE SKIP LOCKED"
    else:
        restrict, order, lock = "AND l.session_id = ANY(%(only)s::text[])", "l.session_id", "FOR UPDATE"
    return f"""
        WITH candidates AS (
            SELECT l.session_id FROM bridge_leases l
            WHERE {_CLAIMABLE} {restrict}
            ORDER BY {order}
            LIMIT %(limit)s
            {lock}
        )
        UPDATE bridge_leases l
        SET node_id = %(node)s, epoch = l.epoch + 1, ttl = make_interval(secs => %(ttl)s),
            expires_at = now() + make_interval(secs => %(ttl)s), acquired_at = now(), renewed_at = now()
        FROM candidates c WHERE l.session_id = c.session_id
        RETURNING {_COLUMNS}
        """


_RELEASE: Final = """
    UPDATE bridge_leases l SET node_id = NULL, expires_at = NULL
    FROM unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS h(session_id, epoch)
    WHERE l.session_id = h.session_id AND l.epoch = h.epoch AND l.node_id = %(node)s
    RETURNING l.session_id
"""


def _lease(row: Sequence[Any]) -> Lease:
    return Lease(str(row[0]), None if row[1] is None else str(row[1]), int(row[2]), row[3], bool(row[4]))


class Leases:
    """The lease table seen by one node (`node_id`), with its lease `ttl` in seconds."""

    def __init__(self, pool: AsyncConnectionPool, node_id: str, ttl: float) -> None:
        if not node_id:
            raise ValueError("node_id must not be empty")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.pool = pool
        self.node_id = node_id
        self.ttl = ttl

    async def _fetch(self, query: str, params: Mapping[str, Any], what: str) -> list[tuple[Any, ...]]:
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(query.encode(), params)
                return await cursor.fetchall() if cursor.description is not None else []
        except Exception as exc:
            if is_connection_fault(exc):
                raise ClusterUnavailableError(f"{what}: the cluster database is unreachable ({exc})") from exc
            raise

    async def add_tenants(self, session_ids: Iterable[str]) -> int:
        """Make each session a cluster tenant (unowned, epoch 0) unless it is one; returns how many were new."""
        ids = [validate_session_id(s) for s in session_ids]
        rows = await self._fetch(
            "INSERT INTO bridge_leases (session_id) SELECT unnest(%(ids)s::text[]) "
            "ON CONFLICT (session_id) DO NOTHING RETURNING 1",
            {"ids": ids},
            "adding tenants",
        )
        return len(rows)

    async def claim(self, limit: int, *, only: Sequence[str] | None = None) -> list[Lease]:
        """Take up to `limit` unowned or expired tenants (epoch + 1 each); returns the leases won."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            _claim_query(only),
            {"node": self.node_id, "ttl": self.ttl, "limit": limit, "only": list(only or [])},
            "claiming tenants",
        )
        return sorted((_lease(r) for r in rows), key=lambda lease: lease.session_id)

    async def renew(self, held: Mapping[str, int]) -> RenewResult:
        """Extend every lease of `held` (session -> epoch) this node still holds with that epoch, in one statement."""
        if not held:
            return RenewResult([], [])
        rows = await self._fetch(
            f"""
            UPDATE bridge_leases l
            SET expires_at = now() + make_interval(secs => %(ttl)s), ttl = make_interval(secs => %(ttl)s),
                renewed_at = now()
            FROM unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS h(session_id, epoch)
            WHERE l.session_id = h.session_id AND l.epoch = h.epoch AND l.node_id = %(node)s
            RETURNING {_COLUMNS}
            """,
            {"node": self.node_id, "ttl": self.ttl, "ids": list(held), "epochs": list(held.values())},
            "renewing leases",
        )
        renewed = sorted((_lease(r) for r in rows), key=lambda lease: lease.session_id)
        kept = {lease.session_id for lease in renewed}
        return RenewResult(renewed, sorted(s for s in held if s not in kept))

    async def release(self, held: Mapping[str, int]) -> list[str]:
        """Give back the tenants of `held` this node holds with that epoch; returns those released."""
        if not held:
            return []
        rows = await self._fetch(
            _RELEASE, {"node": self.node_id, "ids": list(held), "epochs": list(held.values())}, "releasing leases"
        )
        return sorted(str(r[0]) for r in rows)

    async def owner(self, session_id: str) -> Lease | None:
        """The lease row of one tenant (None: not a cluster tenant)."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM bridge_leases l WHERE l.session_id = %(id)s",
            {"id": session_id},
            "looking up a tenant's owner",
        )
        return _lease(rows[0]) if rows else None

    async def all_leases(self) -> list[Lease]:
        """Every tenant's lease, by session id (for `cluster status` and the fair-share computation)."""
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM bridge_leases l ORDER BY l.session_id", {}, "listing leases")
        return [_lease(r) for r in rows]


def list_leases(conn: psycopg.Connection[Any]) -> list[Lease]:
    """`Leases.list` for synchronous callers (the CLI)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM bridge_leases l ORDER BY l.session_id".encode()).fetchall()
    return [_lease(r) for r in rows]


def database_now(conn: psycopg.Connection[Any]) -> datetime:
    """The database's clock, the only clock leases are measured by."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def claim_tenant(conn: psycopg.Connection[Any], session_id: str, node_id: str, ttl: float) -> Lease | None:
    """Synchronous `Leases.claim(1, only=[session_id])` for operator commands (import, restore):
    they take the tenant's lease like a node would, so their writes are fenced too. None: the
    tenant is owned by a live node (or is not a tenant)."""
    rows = conn.execute(
        _claim_query([session_id]).encode(),
        {"node": node_id, "ttl": ttl, "limit": 1, "only": [session_id]},
    ).fetchall()
    return _lease(rows[0]) if rows else None


def release_tenant(conn: psycopg.Connection[Any], session_id: str, node_id: str, epoch: int) -> bool:
    """Synchronous `Leases.release` of one tenant; False when it was not held with that epoch."""
    rows = conn.execute(_RELEASE.encode(), {"node": node_id, "ids": [session_id], "epochs": [epoch]}).fetchall()
    return bool(rows)


def add_tenant(conn: psycopg.Connection[Any], session_id: str) -> bool:
    """Synchronous `Leases.add_tenants` of one session; True when it was new."""
    rows = conn.execute(
        "INSERT INTO bridge_leases (session_id) VALUES (%s) ON CONFLICT (session_id) DO NOTHING RETURNING 1",
        (validate_session_id(session_id),),
    ).fetchall()
    return bool(rows)
