"""`EventLog`: every published event gets its row on disk before SSE or a webhook sees it.

How a burst is written (group commit): `append()` (the bus's sink) only queues the event and
wakes the writer task; the writer takes everything queued, computes the webhook outbox rows for
it (`route`), and runs one transaction in its own thread (inserting events and outbox rows, plus
any outbox updates waiting in `write()`), then tells the bus the events are committed. So a burst
of 100 events costs one fsync. A small transaction (`INLINE_MAX`: a send's row and its events,
no outbox marks or prunes) runs on the event loop's thread instead while `bridge.store.inline`'s
gate is open: handing it to the thread and back cost more than the transaction. A burst made only of
`message.status` and `presence` events (nobody waits for those to be durable) first waits up to
`LINGER` (25 ms) for company: a sent message's delivery receipt arrives a few ms after the send's
own burst, and alone it would cost a transaction and an fsync of its own (sequential sends: 1.2
transactions per message instead of 1.8, docs/performance.md). Any other event, and anyone waiting
(`flush`, `held_written`, `write`) for something the transaction being written does not already
carry, ends the wait at once; nothing is visible before it is durable.

What may go wrong, and what happens then:
- the disk is full, read-only or failing, or the file is corrupt: the transaction is rolled
  back, the events stay queued in memory (in order) and the writer retries with the one backoff
  policy; one critical alert says what broke and what to do, one info alert says when it works
  again. Sessions keep running. Nothing is shown to SSE or webhooks until it is on disk.
- more than `memory_max` events wait: the oldest are dropped; the loss is counted
  (`bridge_events_lost_total`), logged and alerted with the exact sequence range.
- the file is deleted under the bridge: the next burst notices (inode check) and starts a new
  file; numbering goes on; undelivered webhook rows of the lost file are gone (critical alert).

Other stores ride the same bursts: `hold(op)` queues a write (the message store's rows) that is
part of every burst's transaction until one commits, exactly like an event: held in memory while
the disk fails (bounded by `memory_max`, the loss counted and alerted), written when it recovers.
A held write queued before an event is committed no later than that event. `EventLog.of(bus)`
finds the open log of a bus, so a store built before the log was opened can still reach it.

In cluster mode `share(shared, head)` composes the log with a `SharedLog` (bridge/eventlog/shared.py):
each committed burst is handed to it instead of to the bus, and the shared log feeds the bus's
committed stream (SSE) with the cluster's numbering; `epoch` becomes the shared log's (webhook-ids),
and `close()` lets it copy what is still here before the file closes.

`open()` also reads the ids of the messages stored in the last `RECENT_MESSAGES_WINDOW` seconds
(`recent_message_ids`), before anything can publish: after a crash WhatsApp delivers again what the
device had not acknowledged, and the message store must know those ids from the first copy on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridge.delivery import Backoff
from bridge.errors import BridgeError, ErrorCode, StoreError
from bridge.eventlog import retention, schema
from bridge.eventlog.shared import SharedLog
from bridge.events import Event, EventBus, EventKind, Severity, canonical_kind, data_json
from bridge.metrics import EVENT_LOG_COMMIT_SECONDS, EVENT_LOG_HELD, EVENTS_LOST, EVENTS_PERSISTED
from bridge.store.durable import make_dirs
from bridge.store.inline import InlineGate

log = logging.getLogger(__name__)
R = TypeVar("R")
WriteOp = Callable[[sqlite3.Connection], Any]
PRUNE_INTERVAL = 60.0
LINGER = 0.025
"""How long a burst of status events alone waits for company before it is committed (see `EventLog`)."""
INLINE_MAX = 16
"""A transaction of at most this many events and held rows, and no `write()` op (outbox marks,
prunes: a prune may delete thousands of rows), runs on the event loop's thread while the gate is
open (bridge/store/inline.py); any other goes to the writer thread."""
LINGERING_KINDS = frozenset({EventKind.MESSAGE_STATUS.value, EventKind.PRESENCE.value})
"""Events whose burst may wait `LINGER`: nobody waits for them to be durable, and a delivery receipt of a
sent message arrives a few ms after the send's own burst, so alone it would cost a transaction (and its
fsync) of its own."""
RECENT_MESSAGES_WINDOW = 7 * 86400.0
RECENT_MESSAGES_MAX = 200_000


_OPEN_LOGS: weakref.WeakKeyDictionary[EventBus, EventLog] = weakref.WeakKeyDictionary()


class EventLogUnavailable(BridgeError):
    """The event log cannot be read or written now (see the alert for the cause)."""

    code: str = ErrorCode.EVENT_LOG_UNAVAILABLE


@dataclass(frozen=True)
class OutboxRow:
    """One delivery to plan in the same transaction as its event."""

    target: str
    seq: int
    lane: str


Router = Callable[[Sequence[Event]], list[OutboxRow]]
CommitListener = Callable[[Sequence[Event], list[OutboxRow]], None]


def _explain(exc: BaseException, path: Path) -> str:
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        fix = f"the file system holding {path.parent} is full: free space"
    elif "readonly" in lowered or "read-only" in lowered:
        fix = f"{path.parent} is read-only: remount it read-write or set BRIDGE_STATE_DIR elsewhere"
    elif "not a database" in lowered or "malformed" in lowered:
        fix = f"{path} is corrupt: stop the bridge, move the file aside (keep it for inspection) and restart"
    elif "unable to open" in lowered or "permission" in lowered or isinstance(exc, PermissionError):
        fix = f"the bridge may not write {path}: fix ownership/permissions of {path.parent}"
    elif "disk i/o" in lowered:
        fix = "the disk reported an I/O error: check `dmesg` and move BRIDGE_STATE_DIR to healthy storage"
    else:
        fix = "check the file system holding BRIDGE_STATE_DIR"
    return f"event log {path}: {text}; {fix}"


class EventLog:
    """The durable event log (see the module docstring). One writer thread, one reader thread."""

    def __init__(
        self,
        path: Path,
        bus: EventBus,
        *,
        memory_max: int = 100_000,
        retention_age: float = 7 * 86400.0,
        retention_count: int = 1_000_000,
        backoff: Backoff | None = None,
    ) -> None:
        self.path = path
        self.bus = bus
        self.memory_max = memory_max
        self.retention_age = retention_age
        self.retention_count = retention_count
        self.epoch = ""
        self.file_epoch = ""
        self.shared: SharedLog | None = None
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._pending: deque[Event] = deque()
        self._ops: list[tuple[WriteOp, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._urgent = False
        """Something queued since the last burst was taken must not linger (see `LINGER`)."""
        self._in_flight: tuple[int, int, int] | None = None
        """What the burst being written covers: its last event's seq, its last `write` and its last held
        write (their numbers), so a waiter for those does not make the next burst urgent too."""
        self._idle = asyncio.Event()
        self._progress = asyncio.Event()
        self._writing = 0
        self._synced_ops = 0
        self._synced = True
        self._ops_queued = 0
        self._ops_settled = 0
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="eventlog-write")
        self._gate = InlineGate("event_log")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="eventlog-read")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._route: Router | None = None
        self._listeners: list[CommitListener] = []
        self._failure: str | None = None
        self._lost: list[list[int]] = []
        self._lost_alerted = False
        self._held: deque[WriteOp] = deque()
        self._held_queued = 0
        self._held_settled = 0
        self._held_lost = 0
        self._pruners: list[WriteOp] = []
        self._recent_messages: dict[str, set[str]] = {}

    @staticmethod
    def of(bus: EventBus) -> EventLog | None:
        """The log attached to `bus` (between `open()` and `close()`), if any."""
        return _OPEN_LOGS.get(bus)

    # ----- life cycle ---------------------------------------------------------------------
    async def open(self) -> int:
        """Open (or create) the file, attach to the bus and start the writer; returns the last seq.

        A file that cannot be opened does not stop the bridge: the log starts in the failing
        state (alert), holds events in memory and keeps trying.
        """
        last = 0
        try:
            last = await self._in_writer(self._open_writer)
        except (sqlite3.Error, OSError, StoreError) as exc:
            self._set_failing(exc)
        if self._failure is None:
            try:
                rows = await self.read(functools.partial(
                    _recent_message_ids, since=time.time() - RECENT_MESSAGES_WINDOW, limit=RECENT_MESSAGES_MAX))
            except EventLogUnavailable as exc:
                log.warning("%s; a message delivered again after a crash may be published again", exc.message)
                rows = []
            for session, message_id in rows:
                self._recent_messages.setdefault(session, set()).add(message_id)
        self.bus.attach(self, last)
        _OPEN_LOGS[self.bus] = self
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._write_loop(), name="eventlog-writer")
        self._pruner = loop.create_task(self._prune_loop(), name="eventlog-retention")
        return last

    async def close(self, flush_within: float = 5.0) -> None:
        """Write what is queued (bounded by `flush_within`), detach from the bus, close the file."""
        self.bus.detach()
        if _OPEN_LOGS.get(self.bus) is self:
            del _OPEN_LOGS[self.bus]
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self._task is not None:
            if self._failure is None:
                await self.flush(flush_within)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.shared is not None:
            await self.shared.close(flush_within)
        if self._held:
            log.error("event log closed with %d held writes (messages) not written", len(self._held))
        if self._pending:
            log.error("event log closed with %d events not written (seq %d..%d)", len(self._pending),
                      self._pending[0].seq, self._pending[-1].seq)
        for _, future in self._ops:
            if not future.done():
                future.set_exception(EventLogUnavailable("the event log is closing"))
        await self._in_writer(self._close_writer)
        await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._close_reader)
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)

    async def flush(self, within: float = 10.0) -> bool:
        """Wait until every event appended and every write queued so far is done; False if `within`
        s passed first (or the log is failing)."""
        target = self._pending[-1].seq if self._pending else 0
        ops_target = self._ops_queued
        held_target = self._held_queued
        return await self._wait_until(
            lambda: not (self._pending and self._pending[0].seq <= target)
            and self._ops_settled >= ops_target and self._held_settled >= held_target,
            within,
            lambda burst: target <= burst[0] and ops_target <= burst[1] and held_target <= burst[2],
        )

    async def held_written(self, within: float = 5.0, *, upto: int | None = None) -> bool:
        """Wait until every write `hold` queued so far (or up to the one numbered `upto`) is committed;
        False if `within` s passed first (the disk is failing: they stay held and are written when it
        recovers)."""
        target = self._held_queued if upto is None else upto
        return await self._wait_until(lambda: self._held_settled >= target, within,
                                      lambda burst: target <= burst[2])

    async def _wait_until(self, done: Callable[[], bool], within: float,
                          covered: Callable[[tuple[int, int, int]], bool]) -> bool:
        """Wait for the writer's progress until `done()`; False after `within` s. The writer is woken
        and the next burst made urgent only when the burst being written does not `cover` what is
        waited for: a send waiting for its row while that row commits must not pull the statuses queued
        meanwhile (its own delivery receipt) out of their linger into a transaction of their own."""
        if done():  # a send's rows are usually committed by the time it asks (no timer, no wake-up)
            return True
        try:
            async with asyncio.timeout(within):
                while not done():
                    self._progress.clear()
                    if self._in_flight is None or not covered(self._in_flight):
                        self._urgent = True
                        self._wake.set()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    def share(self, shared: SharedLog, head: int) -> None:
        """Hand committed bursts to `shared` from now on (see the module docstring); `head` is the
        shared log's newest seq, so the bus's committed numbering continues from it."""
        self.shared = shared
        self.epoch = shared.epoch
        self.bus.attach(self, max(self.bus.last_seq, head))

    def set_router(self, route: Router | None) -> None:
        """Who plans outbox rows for each burst (the webhook dispatcher)."""
        self._route = route

    def add_pruner(self, op: WriteOp) -> None:
        """Run `op` (another store's retention, e.g. the message store's) with every prune."""
        self._pruners.append(op)

    def on_commit(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def recent_message_ids(self) -> dict[str, set[str]]:
        """Per session, the ids of the messages stored in the last week, as read by `open()`."""
        return self._recent_messages

    @property
    def healthy(self) -> bool:
        return self._failure is None

    @property
    def held(self) -> int:
        """Events waiting in memory to be written."""
        return len(self._pending)

    @property
    def held_writes(self) -> int:
        """Held writes (`hold`) waiting in memory to be written."""
        return len(self._held)

    # ----- writing --------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        """The bus's sink: queue `event` for the next burst. Never blocks, never raises."""
        if len(self._pending) >= self.memory_max:
            if len(self._pending) > self._writing:
                # The oldest not already in the transaction being written goes.
                victim = self._pending[self._writing]
                del self._pending[self._writing]
                self._drop(victim)
            else:
                self._drop(event)
                return
        self._pending.append(event)
        EVENT_LOG_HELD.set(len(self._pending))
        if not self._urgent and canonical_kind(event.kind) not in LINGERING_KINDS:
            self._urgent = True
        self._idle.clear()
        self._wake.set()

    def hold(self, op: WriteOp) -> int:
        """Queue `op` for the next burst and keep it queued until a burst with it commits; returns its
        number, which `held_written(upto=...)` can wait for (held writes commit in this order).

        Never blocks, never raises: what `op` returns is ignored. It must be idempotent-safe
        SQL (an `op` that raises a constraint or programming error is logged and skipped, so one
        bad row cannot hold every later event). Past `memory_max` held writes, the oldest not in
        the transaction being written is dropped, counted and alerted.
        """
        if len(self._held) >= self.memory_max:
            self._held.popleft()
            self._held_settled += 1
            self._held_lost += 1
            if self._held_lost == 1:
                log.error("event log memory bound (%d) reached: dropping held message-store writes", self.memory_max)
                self._alert_soon("message_store_writes_lost", "critical",
                                 f"the event log could not write for too long and dropped message-store writes "
                                 f"(bound BRIDGE_EVENT_LOG_MEMORY_MAX={self.memory_max}); the messages' events are "
                                 "not affected, but GET .../messages may miss them")
        self._held.append(op)
        self._held_queued += 1
        self._idle.clear()
        self._wake.set()
        return self._held_queued

    async def write(self, op: Callable[[sqlite3.Connection], R], *, sync: bool = True) -> R:
        """Run `op` inside the next burst's transaction; raises EventLogUnavailable if it fails.

        `sync=False` is for writes whose loss on a power cut only repeats work (a delivery's
        "delivered" mark: the event is sent again with the same webhook-id): a burst made only of
        such writes commits without an fsync (WAL, synchronous=NORMAL; still safe against a
        crash of the bridge). Any event or other write in the burst makes it a synced commit.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        if sync:
            self._synced_ops += 1
        self._ops_queued += 1
        self._ops.append((op, future))
        self._urgent = True
        self._idle.clear()
        self._wake.set()
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run a query on the reader thread (sees every committed burst)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._run_reader, fn)
        except (sqlite3.Error, OSError) as exc:
            raise EventLogUnavailable(_explain(exc, self.path)) from exc

    async def _write_loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._linger()
            while self._pending or self._ops or self._held:
                self._urgent = False
                events = list(self._pending)
                self._writing = len(events)
                held = list(self._held)
                ops, self._ops = self._ops, []
                sync, self._synced_ops = bool(events) or bool(held) or self._synced_ops > 0, 0
                self._in_flight = (events[-1].seq if events else 0, self._ops_settled + len(ops),
                                   self._held_settled + len(held))
                try:
                    rows = self._route(events) if self._route is not None and events else []
                except Exception:
                    log.exception("webhook routing failed; these events get no outbox rows")
                    rows = []
                started = time.perf_counter()
                try:
                    args = (events, rows, [op for op, _ in ops], sync, held)
                    if not ops and len(events) + len(held) <= INLINE_MAX and self._gate.open():
                        results = self._gate.run(self._commit, *args)
                    else:
                        results = await self._in_writer(self._commit, *args)
                        self._gate.threaded(time.perf_counter() - started)
                except (sqlite3.Error, OSError, StoreError) as exc:
                    self._writing = 0
                    self._in_flight = None
                    error = EventLogUnavailable(_explain(exc, self.path))
                    for _, future in ops:
                        if not future.done():
                            future.set_exception(error)
                    failures += 1
                    self._ops_settled += len(ops)
                    self._set_failing(exc)
                    self._progress.set()
                    await asyncio.sleep(self._backoff.delay(failures))
                    continue
                EVENT_LOG_COMMIT_SECONDS.observe(time.perf_counter() - started)
                self._in_flight = None
                self._ops_settled += len(ops)
                self._progress.set()
                for _ in events:
                    self._pending.popleft()
                for op in held:
                    # a drop past the bound may have removed some meanwhile; remove exactly these
                    if self._held and self._held[0] is op:
                        self._held.popleft()
                        self._held_settled += 1
                self._writing = 0
                EVENT_LOG_HELD.set(len(self._pending))
                EVENTS_PERSISTED.inc(len(events))
                for (_, future), result in zip(ops, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                if failures or self._failure is not None:
                    failures = 0
                    self._set_recovered()
                if events and self.shared is not None:
                    self.shared.local_committed(events)
                elif events:
                    self.bus.committed(events)
                for listener in self._listeners:
                    try:
                        listener(events, rows)
                    except Exception:
                        log.exception("an event log commit listener failed")
                if not (self._urgent or self._ops):
                    break  # statuses that came during this commit may wait for company too (`_wake` is set)
            if not (self._pending or self._ops or self._held):
                self._idle.set()

    async def _linger(self) -> None:
        """Let a burst of status events alone wait up to `LINGER` for company: any other event (the
        next send's or received message's burst) or a waiter (`flush`, `held_written`, `write`) ends
        the wait at once. Nothing becomes visible earlier than before; status events only later."""
        if self._urgent or self._failure is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER
        while not self._urgent and (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                return
            self._wake.clear()

    async def prune(self) -> retention.PruneResult:
        """Apply the retention settings now (the log also does it every PRUNE_INTERVAL s), then every
        added pruner's, in the same transaction."""
        pruners = list(self._pruners)

        def run(conn: sqlite3.Connection) -> retention.PruneResult:
            result = retention.prune(conn, max_age=self.retention_age, keep=self.retention_count)
            for op in pruners:
                op(conn)
            return result

        return await self.write(run)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            try:
                result = await self.prune()
            except EventLogUnavailable:
                continue
            if result.events:
                log.info("event log retention pruned %d events, %d deliveries", result.events, result.deliveries)

    # ----- the writer thread ------------------------------------------------------------------
    async def _in_writer(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, *args)

    def _open_writer(self) -> int:
        make_dirs(self.path.parent)
        conn = schema.connect(self.path)
        self._synced = True
        self._wconn = conn
        self._inode = os.stat(self.path).st_ino
        self.file_epoch = schema.epoch_of(conn)
        if self.shared is None:
            self.epoch = self.file_epoch
        return schema.last_seq_of(conn)

    def _close_writer(self) -> None:
        if self._wconn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._wconn.close()
            self._wconn = None

    def _ensure_writer(self) -> sqlite3.Connection:
        if self._wconn is not None:
            try:
                inode: int | None = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            if inode != self._inode:
                self._close_writer()
                self._lost_file()
        if self._wconn is None:
            self._open_writer()
        assert self._wconn is not None
        return self._wconn

    def _commit(self, events: list[Event], rows: list[OutboxRow], ops: list[WriteOp], sync: bool,
                held: Sequence[WriteOp] = ()) -> list[Any]:
        conn = self._ensure_writer()
        if sync != self._synced:
            conn.execute(f"PRAGMA synchronous = {'FULL' if sync else 'NORMAL'}")
            self._synced = sync
        try:
            conn.execute("BEGIN IMMEDIATE")
            if held and not _run_held_at_once(conn, held):
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                for op in held:
                    _run_held(conn, op)
            if events:
                conn.executemany(
                    "INSERT OR IGNORE INTO events (seq, ts, session, kind, data) VALUES (?, ?, ?, ?, ?)",
                    [(e.seq, e.ts, e.session, canonical_kind(e.kind), data_json(e.data).decode()) for e in events],
                )
            if rows:
                now = time.time()
                conn.executemany(
                    "INSERT OR IGNORE INTO outbox (target, seq, lane, created_at, next_at) VALUES (?, ?, ?, ?, ?)",
                    [(r.target, r.seq, r.lane, now, now) for r in rows],
                )
            results = [op(conn) for op in ops]
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
                self._close_writer()
            raise
        return results

    def _run_reader(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        if self._rconn is None:
            if not self.path.exists():
                raise sqlite3.OperationalError("unable to open database file (it does not exist yet)")
            self._rconn = schema.connect(self.path, readonly=True)
        try:
            return fn(self._rconn)
        except sqlite3.DatabaseError:
            self._close_reader()
            raise

    def _close_reader(self) -> None:
        if self._rconn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._rconn.close()
            self._rconn = None

    # ----- faults -----------------------------------------------------------------------------
    def _set_failing(self, exc: BaseException) -> None:
        message = _explain(exc, self.path)
        if self._failure == message:
            return
        first = self._failure is None
        self._failure = message
        log.error("%s; %d events held in memory", message, len(self._pending))
        if first:
            self._alert_soon("event_log_failing", "critical",
                             f"{message}. Events are held in memory (up to {self.memory_max}) and written when "
                             "it works again; SSE and webhooks pause until then.")

    def _set_recovered(self) -> None:
        self._failure = None
        log.warning("event log %s works again; held events were written", self.path)
        extra: dict[str, Any] = {}
        if self._lost:
            extra["lost_ranges"] = [list(r) for r in self._lost]
            self._lost = []
            self._lost_alerted = False
        self._alert_soon("event_log_recovered", "info", f"event log {self.path} works again", **extra)

    def _drop(self, event: Event) -> None:
        EVENTS_LOST.inc()
        if self._lost and self._lost[-1][1] == event.seq - 1:
            self._lost[-1][1] = event.seq
        else:
            self._lost.append([event.seq, event.seq])
        if not self._lost_alerted:
            self._lost_alerted = True
            log.error("event log memory bound (%d) reached: dropping events from seq %d on", self.memory_max,
                      event.seq)
            self._alert_soon("events_lost", "critical",
                             f"the event log could not write for too long and dropped events from seq {event.seq} "
                             f"on (bound BRIDGE_EVENT_LOG_MEMORY_MAX={self.memory_max}); the exact ranges follow "
                             "in the recovery alert")
        log.warning("dropped event seq %d (%s, session %s)", event.seq, event.kind, event.session)

    def _lost_file(self) -> None:
        log.critical("event log %s vanished while open; starting a new file", self.path)
        self._alert_soon("event_log_replaced", "critical",
                         f"{self.path} was deleted or replaced while the bridge ran; a new file was started. Events "
                         "and undelivered webhook rows of the old file are gone; restore it from a backup if needed.")

    def _alert_soon(self, kind: str, severity: Severity, message: str, **extra: Any) -> None:
        loop = self._loop()
        if loop is None:
            return
        loop.call_soon_threadsafe(lambda: self.bus.alert(None, kind, severity, message, **extra))

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        task = self._task
        if task is not None:
            return task.get_loop()
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None


_BAD_ROW = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, ValueError, TypeError, KeyError)
"""What a held write raises for its own bad row (skipped), as opposed to a disk fault (fails the burst)."""


def _run_held_at_once(conn: sqlite3.Connection, held: Sequence[WriteOp]) -> bool:
    """Every held write, first thing in the transaction; False (the transaction to be rolled back and
    the writes run one by one with `_run_held`) when one of them hits a bad row.

    Why not a savepoint around each: a send's writes (its row, its statuses) are three or four held
    writes per burst, and every SQL statement hands the GIL to the event loop and back; a bad row is
    rare enough to pay for running the burst's held writes twice.
    """
    try:
        for op in held:
            op(conn)
    except _BAD_ROW as exc:
        log.warning("a held write failed (%s); writing this burst's held writes one by one", exc)
        return False
    return True


def _run_held(conn: sqlite3.Connection, op: WriteOp) -> None:
    """One held write inside a savepoint: a bad row is skipped (logged), a disk fault fails the burst."""
    conn.execute("SAVEPOINT held")
    try:
        op(conn)
    except _BAD_ROW as exc:
        conn.execute("ROLLBACK TO held")
        log.error("a held write was skipped: %s", exc)
    conn.execute("RELEASE held")


def _recent_message_ids(conn: sqlite3.Connection, *, since: float, limit: int) -> list[tuple[str, str]]:
    return [(str(session), str(mid)) for session, mid in conn.execute(
        "SELECT session, id FROM messages WHERE stored_at >= ? ORDER BY stored_at DESC LIMIT ?", (since, limit))]
