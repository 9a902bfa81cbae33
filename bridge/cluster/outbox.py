"""The cluster's webhook outbox and configs in PostgreSQL: one node delivers each row.

Rows are planned by `SharedEvents` in the transaction that numbers their events (so an event in
the shared log always has its deliveries planned). Delivering follows the embedded outbox's rules
(bridge/eventlog/outbox.py): a row leaves `pending` only after a 2xx (`delivered`) or past the
retry horizon (`failed`, the dead-letter list); a session's rows go in order (only the head of
each lane is offered); the dispatcher's `RetryPolicy` decides every wait.

Why claims with an expiry and not a lock held during the request: a webhook request can take
`webhook_timeout` seconds and a node can die during it. `take_due` picks the free heads and marks
them `claimed_by` this node until `claim_until` (the database's clock) in one statement; a
concurrent claim re-checks the row under its lock and skips it, so two nodes never send the same
row at once. A node that dies mid-delivery leaves its claim to expire (`claim_ttl`, beyond the
request timeout), then any node takes the row; a node that stops cleanly releases its claims at
once. The outcome is recorded before the lane's next row is offered (one round trip per delivery:
the order of a lane must hold across nodes).

While the database is away (a restart) nothing is claimed (`take_due` finds nothing and looks
again every `AWAY_RETRY` s), and recording an outcome waits and retries for at most `WRITE_WAIT`
s, like the auth backend; past that the row stays claimed until its claim expires and is sent
again then (at least once, same webhook-id).

`PgWebhookConfigs` keeps the configs in `cluster_webhooks`, the same on every node: a change is
written, then announced with `pg_notify('bridge_webhooks')`, and every node reloads its copy.
On the first start of a node in cluster mode its own webhooks.json entries are added (never
replacing one the cluster already has).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import WRITE_WAIT
from bridge.cluster.db import is_connection_fault
from bridge.cluster.events import WEBHOOKS_CHANNEL
from bridge.delivery import Job
from bridge.eventlog.log import CommitListener, Router
from bridge.eventlog.outbox import Delivery, OutboxStats, RowState, TargetBacklog
from bridge.events import Event
from bridge.webhooks.config import ConfigStore, Webhook

if TYPE_CHECKING:
    from bridge.cluster.events import SharedEvents

log = logging.getLogger(__name__)

#: How long `next_due` may sleep when nothing is due, so a claim that expired is noticed.
IDLE_POLL = 5.0
#: How soon a backlog looks again after the database did not answer (s).
AWAY_RETRY = 1.0

_CLAIM = """
WITH heads AS (
    SELECT DISTINCT ON (lane) seq, lane, next_at, claim_until
    FROM cluster_outbox WHERE target = %(target)s AND state = 'pending'
    ORDER BY lane, seq
), due AS (
    SELECT seq FROM heads
    WHERE next_at <= %(now)s AND (claim_until IS NULL OR claim_until < now()) AND NOT (lane = ANY(%(busy)s))
    ORDER BY seq LIMIT %(limit)s
)
UPDATE cluster_outbox o
SET claimed_by = %(node)s, claim_until = now() + make_interval(secs => %(ttl)s)
FROM due LEFT JOIN cluster_events e ON e.seq = due.seq
WHERE o.target = %(target)s AND o.seq = due.seq AND o.state = 'pending'
  AND (o.claim_until IS NULL OR o.claim_until < now())
RETURNING o.seq, o.lane, o.attempts, o.created_at, o.next_at, o.last_error, e.ts, e.session, e.kind, e.data
"""

_NEXT_DUE = """
WITH heads AS (
    SELECT DISTINCT ON (lane) lane, next_at, claim_until
    FROM cluster_outbox WHERE target = %(target)s AND state = 'pending'
    ORDER BY lane, seq
)
SELECT min(CASE WHEN claim_until IS NOT NULL AND claim_until >= now()
                THEN greatest(next_at, extract(epoch FROM claim_until)::float8) ELSE next_at END)
FROM heads WHERE NOT (lane = ANY(%(busy)s))
"""


def _job(row: tuple[Any, ...]) -> Job[Event | None]:
    seq = int(row[0])
    event = None if row[6] is None else Event(seq=seq, ts=float(row[6]), session=row[7], kind=str(row[8]),
                                               data=json.loads(row[9]))
    return Job(id=str(seq), payload=event, key=str(row[1]), attempts=int(row[2]), created_at=float(row[3]),
               next_at=float(row[4]), last_error=str(row[5]))


class PgBacklog:
    """`TargetBacklog` of one webhook over `cluster_outbox` (see the module docstring)."""

    def __init__(self, shared: SharedEvents, target: str) -> None:
        self.shared = shared
        self.target = target

    def offer(self, job: Job[Event | None]) -> None:
        """Nothing to keep: the table is read at each `take_due`."""

    def invalidate(self) -> None:
        """Nothing cached."""

    async def take_due(self, now: float, limit: int, busy: frozenset[str]) -> list[Job[Event | None]]:
        try:
            async with self.shared.pool.connection() as conn:
                cur = await conn.execute(_CLAIM, {"target": self.target, "now": now, "busy": sorted(busy),
                                                  "limit": limit, "node": self.shared.node_id,
                                                  "ttl": self.shared.claim_ttl})
                rows = await cur.fetchall()
        except Exception as exc:
            if not is_connection_fault(exc):
                raise
            return []
        return sorted((_job(r) for r in rows), key=lambda j: int(j.id))

    async def next_due(self, busy: frozenset[str]) -> float | None:
        try:
            async with self.shared.pool.connection() as conn:
                row = await (await conn.execute(_NEXT_DUE, {"target": self.target, "busy": sorted(busy)})).fetchone()
        except Exception as exc:
            if not is_connection_fault(exc):
                raise
            return time.time() + AWAY_RETRY
        found = None if row is None or row[0] is None else float(row[0])
        idle = time.time() + IDLE_POLL
        return idle if found is None else min(found, idle)

    async def _mark(self, job: Job[Event | None], state: RowState, error: str, next_at: float | None = None) -> None:
        """Record an outcome (idempotent), waiting for a restarting database for at most `WRITE_WAIT` s."""
        deadline = time.monotonic() + WRITE_WAIT
        pause = 0.1
        while True:
            try:
                async with self.shared.pool.connection() as conn:
                    await conn.execute(
                        "UPDATE cluster_outbox SET state = %s, attempts = %s, last_error = %s, "
                        "next_at = coalesce(%s, next_at), done_at = %s, claimed_by = NULL, claim_until = NULL "
                        "WHERE target = %s AND seq = %s",
                        (state, job.attempts, error, next_at, None if state == "pending" else time.time(),
                         self.target, int(job.id)))
                return
            except Exception as exc:
                if not is_connection_fault(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def delivered(self, job: Job[Event | None]) -> None:
        await self._mark(job, "delivered", "")

    async def retry_at(self, job: Job[Event | None], at: float, error: str) -> None:
        await self._mark(job, "pending", error, at)
        job.next_at, job.last_error = at, error

    async def dead(self, job: Job[Event | None], error: str) -> None:
        await self._mark(job, "failed", error)

    async def size(self) -> int:
        async with self.shared.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT count(*) FROM cluster_outbox WHERE target = %s AND state = 'pending'", (self.target,)
            )).fetchone()
        return int(row[0]) if row else 0


class PgOutbox:
    """`OutboxStore` over the cluster's tables."""

    def __init__(self, shared: SharedEvents, configs: PgWebhookConfigs) -> None:
        self.shared = shared
        self.configs = configs
        self._wake: Callable[[], None] | None = None

    @property
    def epoch(self) -> str:
        return self.shared.epoch

    def connect(self, route: Router | None, committed: CommitListener | None, wake: Callable[[], None] | None) -> None:
        """`route` and `committed` are not used: `SharedEvents` plans rows from the configs table in
        the transaction that numbers the events; `wake` is called on every notification and poll."""
        if self._wake is not None:
            self.shared.off_wake(self._wake)
        self._wake = wake
        if wake is not None:
            self.shared.on_wake(wake)
            self.shared.on_configs(self._reload)

    async def _reload(self) -> None:
        try:
            await asyncio.to_thread(self.configs.load)
        except Exception as exc:
            log.warning("could not reload the cluster's webhook configs (%s); keeping the last ones", exc)

    def backlog(self, target: str) -> TargetBacklog:
        return PgBacklog(self.shared, target)

    async def drop_target(self, target: str) -> int:
        async with self.shared.pool.connection() as conn:
            return (await conn.execute("DELETE FROM cluster_outbox WHERE target = %s", (target,))).rowcount

    async def deliveries(self, target: str, state: RowState | None, after: int, limit: int) -> list[Delivery]:
        query = ("SELECT o.seq, e.session, e.kind, o.state, o.attempts, o.created_at, o.next_at, o.last_error, "
                 "o.done_at FROM cluster_outbox o LEFT JOIN cluster_events e ON e.seq = o.seq "
                 "WHERE o.target = %s AND o.seq > %s")
        args: list[object] = [target, after]
        if state is not None:
            query += " AND o.state = %s"
            args.append(state)
        query += " ORDER BY o.seq LIMIT %s"
        args.append(limit)
        async with self.shared.pool.connection() as conn:
            rows = await (await conn.execute(query.encode(), args)).fetchall()
        return [Delivery(seq=int(r[0]), session=r[1], kind=str(r[2] or "?"), state=str(r[3]), attempts=int(r[4]),
                         created_at=float(r[5]), next_at=float(r[6]), last_error=str(r[7]),
                         done_at=None if r[8] is None else float(r[8])) for r in rows]

    async def redeliver(self, target: str, seqs: list[int] | None) -> int:
        now = time.time()
        base = ("UPDATE cluster_outbox SET state = 'pending', attempts = 0, last_error = '', created_at = %s, "
                "next_at = %s, done_at = NULL, claimed_by = NULL, claim_until = NULL "
                "WHERE target = %s AND state = 'failed'")
        async with self.shared.pool.connection() as conn:
            if seqs is None:
                count = (await conn.execute(base.encode(), (now, now, target))).rowcount
            else:
                count = (await conn.execute((base + " AND seq = ANY(%s)").encode(), (now, now, target, seqs))).rowcount
            await conn.execute("SELECT pg_notify(%s, %s)", ("bridge_events", "redeliver"))
        return count

    async def stats(self, target: str) -> OutboxStats:
        async with self.shared.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed'), "
                "min(created_at) FILTER (WHERE state = 'pending') FROM cluster_outbox WHERE target = %s", (target,)
            )).fetchone()
        assert row is not None
        return OutboxStats(int(row[0]), int(row[1]), None if row[2] is None else float(row[2]))

    async def release(self) -> None:
        """Give up this node's claims at once so another node takes the rows without waiting."""
        self.connect(None, None, None)
        try:
            async with self.shared.pool.connection() as conn:
                await conn.execute(
                    "UPDATE cluster_outbox SET claimed_by = NULL, claim_until = NULL "
                    "WHERE claimed_by = %s AND state = 'pending'", (self.shared.node_id,))
                await conn.execute("SELECT pg_notify(%s, %s)", ("bridge_events", "released"))
        except Exception as exc:
            log.warning("could not release this node's webhook claims (%s); they expire by themselves", exc)


class PgWebhookConfigs:
    """`ConfigStore` over `cluster_webhooks` (see the module docstring). Blocking calls: run in a thread."""

    def __init__(self, pool: ConnectionPool, local: ConfigStore | None = None) -> None:
        self.pool = pool
        self.local = local
        self._hooks: dict[str, Webhook] = {}
        self._imported = False

    def load(self) -> None:
        if not self._imported and self.local is not None:
            self._imported = True
            self.local.load()
            for hook in self.local.all():
                with self.pool.connection() as conn:
                    conn.execute(
                        "INSERT INTO cluster_webhooks (id, config, created_at) VALUES (%s, %s, %s) "
                        "ON CONFLICT (id) DO NOTHING", (hook.id, msgspec.json.encode(hook).decode(), hook.created_at))
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT config FROM cluster_webhooks").fetchall()
        self._hooks = {h.id: h for h in (msgspec.json.decode(r[0], type=Webhook) for r in rows)}

    def all(self) -> list[Webhook]:
        return sorted(self._hooks.values(), key=lambda h: (h.created_at, h.id))

    def get(self, webhook_id: str) -> Webhook | None:
        return self._hooks.get(webhook_id)

    def put(self, hook: Webhook) -> None:
        """Write `hook` (every node reloads), then change memory."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO cluster_webhooks (id, config, created_at) VALUES (%s, %s, %s) ON CONFLICT (id) "
                "DO UPDATE SET config = excluded.config, updated_at = now()",
                (hook.id, msgspec.json.encode(hook).decode(), hook.created_at))
            conn.execute("SELECT pg_notify(%s, %s)", (WEBHOOKS_CHANNEL, hook.id))
        self._hooks = {**self._hooks, hook.id: hook}

    def remove(self, webhook_id: str) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            gone = conn.execute("DELETE FROM cluster_webhooks WHERE id = %s", (webhook_id,)).rowcount
            conn.execute("SELECT pg_notify(%s, %s)", (WEBHOOKS_CHANNEL, webhook_id))
        self._hooks = {k: v for k, v in self._hooks.items() if k != webhook_id}
        return bool(gone)
