"""`SharedEvents`: the cluster's event log in PostgreSQL, fed by every node, read by every node.

Why a relay and not a second writer on the publish path: the bus numbers an event when it is
published (synchronously), and the message store's rows commit in the node's own SQLite log in the
same transaction as their events. So each node's own log stays the first durable write, and this
relay copies each committed burst into `cluster_events`, where the cluster numbers it:

- one transaction per burst (group commit): the node's cursor row (`cluster_event_sources`, per
  node and local log file) is locked and advanced, the burst gets a block of shared sequence
  numbers from the one counter row (`cluster_event_head`, locked until commit, so numbers are
  committed in order and a reader that saw seq n never later finds a smaller one appear), the
  events and their webhook outbox rows (`cluster_outbox`, planned from `cluster_webhooks` read in
  the same transaction) are inserted, and `pg_notify('bridge_events', <newest seq>)` is sent, which
  PostgreSQL delivers on commit only. Copying is exactly once: a burst whose commit was lost is
  found again behind the cursor, one whose commit succeeded is skipped by it.
- the database unreachable (a restart): the events stay in the node's file; the relay retries
  with backoff for as long as it takes (one critical alert after `ALERT_AFTER` s, one info alert
  when it works again). Nothing is lost; SSE and webhooks of the shared log pause meanwhile. A
  node killed before it copied a burst copies it when it starts again on the same state folder.
- every node LISTENs on `bridge_events` (its own connection, re-opened after a restart) and
  reads what is new after the newest seq it saw (also every `POLL` s, in case a notification was
  missed), handing it to the bus's committed stream: SSE on any node serves every tenant's events
  with the shared numbering (resume with Last-Event-ID / ?after= works on any node). It also wakes
  the webhook dispatcher (bridge/cluster/outbox.py), which claims rows so one node delivers each.
- the message store's rows a burst touched (its `message` and `message.status` events name them)
  are read from the local file and upserted into `cluster_messages` in the burst's transaction
  (bridge/cluster/messages.py), so whichever node owns a tenant next can quote, react to, forward
  and list messages another node received (`messages()`).
- retention (`prune`, every `PRUNE_INTERVAL` s on one node at a time: an advisory lock) by age and
  count, never an event with an undelivered (pending or failed) outbox row; `cluster_messages` by
  the message store's retention, every tenth pass.

On first contact with a local log file the cursor starts at that file's newest event: what a node
logged before cluster mode was delivered by its own webhooks already and is not copied again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from bridge.cluster import messages as shared_messages
from bridge.cluster.db import is_connection_fault, redact
from bridge.cluster.schema import Migration
from bridge.delivery import Backoff
from bridge.eventlog import stream
from bridge.eventlog.log import EventLog, EventLogUnavailable
from bridge.eventlog.shared import SharedMessages
from bridge.events import Event, EventBus, canonical_kind, data_json
from bridge.messages.store import MessageStore, rows_to_share
from bridge.webhooks.config import Webhook

if TYPE_CHECKING:
    from bridge.eventlog.outbox import OutboxStore
    from bridge.webhooks.config import ConfigStore

log = logging.getLogger(__name__)

COMPONENT: Final = "events"
#: `MIGRATIONS[i]` takes component "events" from version i to i + 1. Append only.
MIGRATIONS: Final[Sequence[Migration]] = (
    """
    CREATE TABLE cluster_event_head (
        id       integer PRIMARY KEY CHECK (id = 1),
        last_seq bigint NOT NULL CHECK (last_seq >= 0),
        epoch    text NOT NULL
    );
    INSERT INTO cluster_event_head (id, last_seq, epoch) VALUES (1, 0, substr(md5(random()::text), 1, 12));
    CREATE TABLE cluster_events (
        seq       bigint PRIMARY KEY,
        ts        double precision NOT NULL,
        session   text,
        kind      text NOT NULL,
        data      text NOT NULL,
        node_id   text NOT NULL,
        local_seq bigint NOT NULL
    );
    CREATE INDEX cluster_events_by_session ON cluster_events (session, seq);
    CREATE INDEX cluster_events_by_ts ON cluster_events (ts);
    CREATE TABLE cluster_event_sources (
        node_id    text NOT NULL,
        source     text NOT NULL,
        last_local bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (node_id, source)
    );
    CREATE TABLE cluster_outbox (
        target      text NOT NULL,
        seq         bigint NOT NULL,
        lane        text NOT NULL,
        state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts    integer NOT NULL DEFAULT 0,
        created_at  double precision NOT NULL,
        next_at     double precision NOT NULL,
        last_error  text NOT NULL DEFAULT '',
        done_at     double precision,
        claimed_by  text,
        claim_until timestamptz,
        PRIMARY KEY (target, seq)
    );
    CREATE INDEX cluster_outbox_heads ON cluster_outbox (target, state, lane, seq);
    CREATE INDEX cluster_outbox_by_seq ON cluster_outbox (seq, state);
    CREATE TABLE cluster_webhooks (
        id         text PRIMARY KEY,
        config     text NOT NULL,
        created_at double precision NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    shared_messages.MIGRATION,
)

CHANNEL: Final = "bridge_events"
WEBHOOKS_CHANNEL: Final = "bridge_webhooks"
PAGE: Final = 500
POLL: Final = 2.0
ALERT_AFTER: Final = 30.0
PRUNE_INTERVAL: Final = 60.0
#: Names the advisory lock that lets one node at a time prune (ASCII "bridgeev").
PRUNE_LOCK_KEY: Final = 0x6272696467656576

_EVENT_COLUMNS: Final = "seq, ts, session, kind, data"


def _event(row: Sequence[Any]) -> Event:
    return Event(seq=int(row[0]), ts=float(row[1]), session=row[2], kind=str(row[3]), data=json.loads(row[4]))


def plan_prune(conn: psycopg.Connection[TupleRow], *, max_age: float, keep: int, now: float | None = None) -> int:
    """The highest shared seq that may be pruned (0: nothing), like `bridge.eventlog.retention`."""
    cutoff = (time.time() if now is None else now) - max_age
    row = conn.execute("SELECT max(seq) FROM cluster_events WHERE ts < %s", (cutoff,)).fetchone()
    by_age = int(row[0] or 0) if row else 0
    (newest,) = conn.execute("SELECT last_seq FROM cluster_event_head WHERE id = 1").fetchone() or (0,)
    return max(by_age, int(newest) - keep, 0)


def prune(
    conn: psycopg.Connection[TupleRow], *, max_age: float, keep: int, now: float | None = None
) -> tuple[int, int]:
    """Delete events up to `plan_prune` except those with an undelivered outbox row, and delivered rows
    whose event is gone; (events, deliveries) deleted. One node at a time (advisory lock)."""
    with conn.transaction():
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (PRUNE_LOCK_KEY,)).fetchone()
        if row is None or not row[0]:
            return 0, 0
        upto = plan_prune(conn, max_age=max_age, keep=keep, now=now)
        if upto <= 0:
            return 0, 0
        events = conn.execute(
            "DELETE FROM cluster_events e WHERE e.seq <= %s AND NOT EXISTS "
            "(SELECT 1 FROM cluster_outbox o WHERE o.seq = e.seq AND o.state <> 'delivered')",
            (upto,),
        ).rowcount
        deliveries = conn.execute(
            "DELETE FROM cluster_outbox o WHERE o.state = 'delivered' AND o.seq <= %s AND NOT EXISTS "
            "(SELECT 1 FROM cluster_events e WHERE e.seq = o.seq)",
            (upto,),
        ).rowcount
    return events, deliveries


class SharedEvents:
    """The relay, the follower and the reads of the shared log (see the module docstring).

    `pool` (asynchronous) serves the relay, reads and the outbox; `sync_pool` the webhook configs
    (called in worker threads) and pruning; `dsn` opens the one LISTEN connection.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        sync_pool: ConnectionPool,
        dsn: str,
        node_id: str,
        *,
        retention_age: float = 7 * 86400.0,
        retention_count: int = 1_000_000,
        claim_ttl: float = 60.0,
        backoff: Backoff | None = None,
        poll: float = POLL,
    ) -> None:
        self.pool = pool
        self.sync_pool = sync_pool
        self.dsn = dsn
        self.node_id = node_id
        self.retention_age = retention_age
        self.retention_count = retention_count
        self.claim_ttl = claim_ttl
        self.poll = poll
        self.head = 0
        self._epoch = ""
        self._backoff = backoff or Backoff(0.2, 5.0)
        self._log: EventLog | None = None
        self._bus: EventBus | None = None
        self._source = ""
        self._cursor = 0
        self._wake = asyncio.Event()
        self._shipped = asyncio.Event()
        self._requested = 0
        self._settled = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._wakers: list[Any] = []
        self._config_listeners: list[Any] = []
        self._failing_since: float | None = None
        self._alerted = False
        self._closed = False
        self._messages = shared_messages.PgMessages(pool)

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def cursor(self) -> int:
        """The newest local seq copied into the shared log."""
        return self._cursor

    # ----- life cycle ---------------------------------------------------------------------------
    async def attach(self, event_log: EventLog) -> None:
        """Read the shared head and this node's cursor, compose with `event_log` and start the relay,
        the follower and retention. Raises psycopg errors when the database cannot be reached."""
        self._log = event_log
        self._bus = event_log.bus
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT last_seq, epoch FROM cluster_event_head WHERE id = 1")).fetchone()
            assert row is not None, "the events schema was not created"
            self.head, self._epoch = int(row[0]), str(row[1])
        self._source = event_log.file_epoch
        self._cursor = await self._source_cursor(self._source, event_log.bus.last_seq)
        event_log.share(self, self.head)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._relay_loop(), name="shared-events-relay"),
            loop.create_task(self._follow_loop(), name="shared-events-follow"),
            loop.create_task(self._prune_loop(), name="shared-events-retention"),
        ]
        self._wake.set()
        log.info("shared event log: node %s copies from local seq %d (file %s); shared head %d", self.node_id,
                 self._cursor, self._source, self.head)

    async def close(self, within: float = 5.0) -> None:
        """Copy what the local log holds (bounded by `within` s; at once when the database is away),
        then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tasks and not await self._caught_up(within, give_up_on_failure=True):
            log.warning("shared event log: local events after seq %d not copied yet; copied at the next start",
                        self._cursor)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def flush(self, within: float = 10.0) -> bool:
        """Wait until every event committed locally so far is in the shared log; False after `within` s."""
        assert self._log is not None
        return await self._log.flush(within) and await self._caught_up(within)

    async def _caught_up(self, within: float, *, give_up_on_failure: bool = False) -> bool:
        """Ask the relay for a pass that ends with nothing left to copy, and wait for it."""
        self._requested += 1
        wanted = self._requested
        self._wake.set()
        try:
            async with asyncio.timeout(within):
                while self._settled < wanted:
                    if give_up_on_failure and self._failing_since is not None:
                        return False
                    self._shipped.clear()
                    await self._shipped.wait()
        except TimeoutError:
            return False
        return True

    # ----- SharedLog ------------------------------------------------------------------------------
    def local_committed(self, events: Sequence[Event]) -> None:
        self._wake.set()

    async def events_after(self, after: int, session: str | None, limit: int) -> list[Event]:
        try:
            async with self.pool.connection() as conn:
                if session is None:
                    cur = await conn.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM cluster_events WHERE seq > %s ORDER BY seq LIMIT %s",
                        (after, limit))
                else:
                    cur = await conn.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM cluster_events WHERE session = %s AND seq > %s "
                        "ORDER BY seq LIMIT %s", (session, after, limit))
                return [_event(r) for r in await cur.fetchall()]
        except Exception as exc:
            if is_connection_fault(exc):
                raise EventLogUnavailable(f"the shared event log cannot be read now: {exc}") from exc
            raise

    async def oldest_seq(self) -> int:
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute("SELECT min(seq) FROM cluster_events")).fetchone()
        except Exception as exc:
            if is_connection_fault(exc):
                raise EventLogUnavailable(f"the shared event log cannot be read now: {exc}") from exc
            raise
        return int(row[0] or 0) if row else 0

    def messages(self) -> SharedMessages:
        return self._messages

    def webhooks(self, local: ConfigStore) -> tuple[OutboxStore, ConfigStore]:
        from bridge.cluster.outbox import PgOutbox, PgWebhookConfigs

        configs = PgWebhookConfigs(self.sync_pool, local)
        return PgOutbox(self, configs), configs

    def on_wake(self, callback: Any) -> None:
        """Call `callback()` whenever new shared events or outbox changes may be due (notify, poll)."""
        self._wakers.append(callback)

    def off_wake(self, callback: Any) -> None:
        with contextlib.suppress(ValueError):
            self._wakers.remove(callback)

    def on_configs(self, callback: Any) -> None:
        """Call `await callback()` when another node changed the webhook configs."""
        self._config_listeners.append(callback)

    # ----- the relay --------------------------------------------------------------------------------
    async def _source_cursor(self, source: str, initial: int) -> int:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO cluster_event_sources (node_id, source, last_local) VALUES (%s, %s, %s) "
                "ON CONFLICT (node_id, source) DO NOTHING", (self.node_id, source, initial))
            row = await (await conn.execute(
                "SELECT last_local FROM cluster_event_sources WHERE node_id = %s AND source = %s",
                (self.node_id, source))).fetchone()
        return int(row[0]) if row else initial

    async def _relay_loop(self) -> None:
        assert self._log is not None
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            requested = self._requested
            while True:
                try:
                    if self._log.file_epoch != self._source:
                        # the local file was replaced: its numbering goes on, copy all of the new one
                        self._source = self._log.file_epoch
                        self._cursor = await self._source_cursor(self._source, 0)
                    page = await self._log.read(functools.partial(
                        stream.events_after, after=self._cursor, session=None, limit=PAGE))
                    if not page:
                        break
                    await self._ship(page)
                except asyncio.CancelledError:
                    raise
                except EventLogUnavailable as exc:
                    failures += 1
                    log.warning("shared event log: cannot read the local log (%s); retrying", exc.message)
                    self._shipped.set()
                    await asyncio.sleep(self._backoff.delay(failures))
                    continue
                except Exception as exc:
                    if not is_connection_fault(exc):
                        log.exception("shared event log: copying a burst failed; retrying")
                    failures += 1
                    self._failing(exc)
                    self._shipped.set()
                    await asyncio.sleep(self._backoff.delay(failures))
                    continue
                failures = 0
                self._recovered()
                self._shipped.set()
            self._settled = max(self._settled, requested)
            self._shipped.set()

    async def _ship(self, page: list[Event]) -> None:
        """Copy `page` (local events, oldest first) and the message rows it touched in one transaction;
        see the module docstring."""
        assert self._log is not None
        keys = shared_messages.touched(page)
        touched = await self._log.read(functools.partial(rows_to_share, keys=keys)) if keys else []
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(
                "SELECT last_local FROM cluster_event_sources WHERE node_id = %s AND source = %s FOR UPDATE",
                (self.node_id, self._source))).fetchone()
            done = int(row[0]) if row else 0
            fresh = [e for e in page if e.seq > done]
            if fresh:
                head_row = await (await conn.execute(
                    "UPDATE cluster_event_head SET last_seq = last_seq + %s WHERE id = 1 RETURNING last_seq",
                    (len(fresh),))).fetchone()
                assert head_row is not None
                first = int(head_row[0]) - len(fresh) + 1
                shared = [Event(seq=first + i, ts=e.ts, session=e.session, kind=canonical_kind(e.kind), data=e.data)
                          for i, e in enumerate(fresh)]
                await conn.execute(
                    "INSERT INTO cluster_events (seq, ts, session, kind, data, node_id, local_seq) "
                    "SELECT * FROM unnest(%s::bigint[], %s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], "
                    "%s::bigint[])",
                    ([e.seq for e in shared], [e.ts for e in shared], [e.session for e in shared],
                     [e.kind for e in shared], [data_json(e.data).decode() for e in shared],
                     [self.node_id] * len(shared), [e.seq for e in fresh]))
                hooks = [msgspec.json.decode(r[0], type=Webhook) for r in
                         await (await conn.execute("SELECT config FROM cluster_webhooks")).fetchall()]
                rows = [(hook.id, e.seq, e.session or "") for e in shared for hook in hooks if hook.wants(e)]
                if rows:
                    now = time.time()
                    await conn.execute(
                        "INSERT INTO cluster_outbox (target, seq, lane, created_at, next_at) "
                        "SELECT t, s, l, %s, %s FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS r(t, s, l) "
                        "ON CONFLICT DO NOTHING",
                        (now, now, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(shared[-1].seq)))
            await shared_messages.upsert(conn, touched, self.node_id)
            await shared_messages.apply_statuses(conn, fresh, {(r.session, r.id) for r in touched})
            await conn.execute(
                "UPDATE cluster_event_sources SET last_local = %s, updated_at = now() "
                "WHERE node_id = %s AND source = %s",
                (max(done, page[-1].seq), self.node_id, self._source))
        self._cursor = max(done, page[-1].seq)

    def _failing(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("shared event log %s unreachable (%s); events wait in the local log",
                        redact(self.dsn), exc)
        elif not self._alerted and now - self._failing_since >= ALERT_AFTER and self._bus is not None:
            self._alerted = True
            self._bus.alert(None, "shared_event_log_failing", "critical",
                            f"the cluster database {redact(self.dsn)} has not taken events for {ALERT_AFTER:.0f} s "
                            f"({exc}); they wait in this node's event log and are copied when it answers again. "
                            "SSE and webhooks pause until then.")

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        log.warning("shared event log works again after %.1f s", time.monotonic() - self._failing_since)
        if self._alerted and self._bus is not None:
            self._bus.alert(None, "shared_event_log_recovered", "info", "the shared event log takes events again")
        self._failing_since = None
        self._alerted = False

    # ----- the follower -------------------------------------------------------------------------------
    async def _follow_loop(self) -> None:
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {WEBHOOKS_CHANNEL}")
                    failures = 0
                    await self._catch_up(configs=True)
                    while True:
                        configs = False
                        async for notify in conn.notifies(timeout=self.poll, stop_after=1):
                            configs = notify.channel == WEBHOOKS_CHANNEL
                        await self._catch_up(configs=configs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not is_connection_fault(exc):
                    log.exception("shared event log: following failed; reconnecting")
                await asyncio.sleep(self._backoff.delay(failures))

    async def _catch_up(self, *, configs: bool) -> None:
        """Hand every shared event after `head` to the bus's committed stream, then wake the dispatcher."""
        if configs:
            for listener in list(self._config_listeners):
                await listener()
        while True:
            page = await self.events_after(self.head, None, PAGE)
            if page:
                self.head = page[-1].seq
                if self._bus is not None:
                    self._bus.committed(page)
            if len(page) < PAGE:
                break
        for waker in list(self._wakers):
            waker()

    # ----- retention --------------------------------------------------------------------------------------
    async def prune(self) -> tuple[int, int]:
        """Apply retention now (see `prune`); (events, deliveries) deleted."""
        def run() -> tuple[int, int]:
            with self.sync_pool.connection() as conn:
                return prune(conn, max_age=self.retention_age, keep=self.retention_count)

        return await asyncio.to_thread(run)

    async def prune_messages(self) -> int:
        """Apply the message store's retention to `cluster_messages` now; how many rows went (0 without
        a message store on this node's bus)."""
        store = MessageStore.of(self._bus) if self._bus is not None else None
        if store is None:
            return 0
        retention = store.retention

        def run() -> int:
            with self.sync_pool.connection() as conn:
                return shared_messages.prune(conn, max_age=retention.max_age, keep=retention.keep)

        return await asyncio.to_thread(run)

    async def _prune_loop(self) -> None:
        passes = 0
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            passes += 1
            try:
                events, deliveries = await self.prune()
                messages = await self.prune_messages() if passes % shared_messages.PRUNE_EVERY == 0 else 0
            except Exception as exc:
                log.warning("shared event log retention failed (%s); next try in %.0f s", exc, PRUNE_INTERVAL)
                continue
            if events or messages:
                log.info("shared event log retention pruned %d events, %d deliveries, %d messages", events,
                         deliveries, messages)

