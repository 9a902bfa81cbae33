"""The webhook outbox: one row per (target, event) in the event log's file.

Rows are created in the same transaction as their event (`EventLog` asks the router), so an
event on disk always has its deliveries planned. A row leaves `pending` only after the receiver
answered 2xx (`delivered`) or the retry horizon passed (`failed`, the dead-letter list, kept
until redelivered or the webhook is removed). `OutboxBacklog` is the `delivery.Backlog` of one
target: the head of each lane (a session) only, so a session's events arrive in order.

`OutboxStore` is what the webhook dispatcher asks of an outbox: `LocalOutbox` is this file's,
bridge/cluster/outbox.py the cluster's (rows in PostgreSQL, claimed by one node at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.delivery import Backlog, Job
from bridge.eventlog.log import CommitListener, EventLog, Router
from bridge.events import Event

log = logging.getLogger(__name__)
RowState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Delivery:
    """One outbox row as the API shows it."""

    seq: int
    session: str | None
    kind: str
    state: str
    attempts: int
    created_at: float
    next_at: float
    last_error: str
    done_at: float | None


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    failed: int
    oldest_pending_at: float | None


def _event(row: sqlite3.Row | tuple[object, ...], offset: int, seq: int) -> Event | None:
    ts, session, kind, data = row[offset : offset + 4]
    if ts is None:
        return None
    return Event(seq=seq, ts=float(str(ts)), session=None if session is None else str(session), kind=str(kind),
                 data=json.loads(str(data)))


def mark(conn: sqlite3.Connection, target: str, seq: int, state: RowState, attempts: int, error: str,
         next_at: float | None = None) -> None:
    now = time.time()
    conn.execute(
        "UPDATE outbox SET state = ?, attempts = ?, last_error = ?, next_at = coalesce(?, next_at), done_at = ? "
        "WHERE target = ? AND seq = ?",
        (state, attempts, error, next_at, None if state == "pending" else now, target, seq),
    )


def stats(conn: sqlite3.Connection, target: str) -> OutboxStats:
    pending, oldest = conn.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE target = ? AND state = 'pending'", (target,)
    ).fetchone()
    (failed,) = conn.execute("SELECT count(*) FROM outbox WHERE target = ? AND state = 'failed'", (target,)).fetchone()
    return OutboxStats(int(pending), int(failed), None if oldest is None else float(oldest))


def list_deliveries(
    conn: sqlite3.Connection, target: str, state: RowState | None, after: int, limit: int
) -> list[Delivery]:
    """Rows of `target` (optionally in one state) with seq > `after`, oldest first."""
    query = (
        "SELECT o.seq, e.session, e.kind, o.state, o.attempts, o.created_at, o.next_at, o.last_error, o.done_at "
        "FROM outbox o LEFT JOIN events e ON e.seq = o.seq WHERE o.target = ? AND o.seq > ?"
    )
    args: list[object] = [target, after]
    if state is not None:
        query += " AND o.state = ?"
        args.append(state)
    query += " ORDER BY o.seq LIMIT ?"
    args.append(limit)
    return [
        Delivery(seq=int(r[0]), session=r[1], kind=str(r[2] or "?"), state=str(r[3]), attempts=int(r[4]),
                 created_at=float(r[5]), next_at=float(r[6]), last_error=str(r[7]),
                 done_at=None if r[8] is None else float(r[8]))
        for r in conn.execute(query, args).fetchall()
    ]


def redeliver(conn: sqlite3.Connection, target: str, seqs: list[int] | None) -> int:
    """Put failed rows (all of them, or `seqs`) back to pending with a fresh horizon."""
    now = time.time()
    base = ("UPDATE outbox SET state = 'pending', attempts = 0, last_error = '', created_at = ?, next_at = ?, "
            "done_at = NULL WHERE target = ? AND state = 'failed'")
    if seqs is None:
        return conn.execute(base, (now, now, target)).rowcount
    total = 0
    for seq in seqs:
        total += conn.execute(base + " AND seq = ?", (now, now, target, seq)).rowcount
    return total


def drop_target(conn: sqlite3.Connection, target: str) -> int:
    """Forget every row of a removed webhook."""
    return conn.execute("DELETE FROM outbox WHERE target = ?", (target,)).rowcount


def pending_window(conn: sqlite3.Connection, target: str, per_lane: int) -> dict[str, list[Job[Event | None]]]:
    """The oldest `per_lane` pending rows of each lane of `target`, with their events."""
    found: dict[str, list[Job[Event | None]]] = {}
    for row in conn.execute(
        "SELECT * FROM (SELECT o.seq, o.lane, o.attempts, o.created_at, o.next_at, o.last_error, "
        "e.ts, e.session, e.kind, e.data, row_number() OVER (PARTITION BY o.lane ORDER BY o.seq) AS n "
        "FROM outbox o LEFT JOIN events e ON e.seq = o.seq WHERE o.target = ? AND o.state = 'pending') "
        "WHERE n <= ? ORDER BY seq",
        (target, per_lane),
    ):
        seq = int(row[0])
        found.setdefault(str(row[1]), []).append(
            Job(id=str(seq), payload=_event(row, 6, seq), key=str(row[1]), attempts=int(row[2]),
                created_at=float(row[3]), next_at=float(row[4]), last_error=str(row[5]))
        )
    return found


class OutboxBacklog:
    """`delivery.Backlog` over one target's outbox rows (payload: the event, None if gone).

    The file is the truth; memory holds the oldest `WINDOW` pending rows of each lane, so a
    delivery costs no read: rows planned by a commit are handed over by the dispatcher
    (`offer`), and a lane whose window ran dry is read again. After anything that may leave
    memory and file apart (a mark that failed, a redelivery) the windows are read again.

    Why `delivered` does not wait for its mark to be committed: a lane would otherwise wait for
    an fsync between two deliveries. If the mark is lost (crash, full disk) the row is pending
    again and is delivered again with the same webhook-id: at least once, as promised.
    """

    WINDOW = 500

    def __init__(self, log: EventLog, target: str) -> None:
        self.log = log
        self.target = target
        self._lanes: dict[str, deque[Job[Event | None]]] = {}
        self._partial: set[str] = set()
        self._taken: set[str] = set()
        self._stale = True
        self._reading: list[Job[Event | None]] | None = None

    def offer(self, job: Job[Event | None]) -> None:
        """A row just committed for this target (from the event log's commit listener)."""
        if self._reading is not None:
            self._reading.append(job)  # a read of the windows is under way: apply after it
            return
        lane = job.key or ""
        if self._stale or lane in self._partial:
            return  # the next read of the window brings it
        queue = self._lanes.setdefault(lane, deque())
        if not queue or int(queue[-1].id) < int(job.id):
            queue.append(job)

    def invalidate(self) -> None:
        """Read the windows from the file before the next delivery."""
        self._stale = True

    async def _refresh(self, lanes: set[str] | None = None) -> None:
        self._reading = []
        try:
            found = await self.log.read(lambda conn: pending_window(conn, self.target, self.WINDOW))
        finally:
            offered, self._reading = self._reading, None
        if lanes is None:
            self._lanes, self._partial = {}, set()
        for lane, jobs in found.items():
            if lanes is not None and lane not in lanes:
                continue
            queue = deque(j for j in jobs if j.id not in self._taken)
            self._lanes[lane] = queue
            if len(jobs) >= self.WINDOW:
                self._partial.add(lane)
            else:
                self._partial.discard(lane)
        for lane in lanes or ():
            if lane not in found:
                self._lanes.pop(lane, None)
                self._partial.discard(lane)
        self._stale = False
        for job in offered:
            self.offer(job)

    async def _heads(self, busy: frozenset[str]) -> list[Job[Event | None]]:
        if self._stale:
            await self._refresh()
        dry = {lane for lane in self._partial if not self._lanes.get(lane)}
        if dry:
            await self._refresh(dry)
        heads = [q[0] for lane, q in self._lanes.items() if q and lane not in busy and q[0].id not in self._taken]
        return sorted(heads, key=lambda j: int(j.id))

    async def take_due(self, now: float, limit: int, busy: frozenset[str]) -> list[Job[Event | None]]:
        due = [j for j in await self._heads(busy) if j.next_at <= now][:limit]
        self._taken.update(j.id for j in due)
        return due

    async def next_due(self, busy: frozenset[str]) -> float | None:
        return min((j.next_at for j in await self._heads(busy)), default=None)

    def _forget(self, job: Job[Event | None]) -> None:
        self._taken.discard(job.id)
        queue = self._lanes.get(job.key or "")
        if queue and queue[0] is job:
            queue.popleft()
        elif queue:
            with contextlib.suppress(ValueError):
                queue.remove(job)

    async def delivered(self, job: Job[Event | None]) -> None:
        self._forget(job)
        seq = int(job.id)
        marking = asyncio.ensure_future(
            self.log.write(lambda conn: mark(conn, self.target, seq, "delivered", job.attempts, ""), sync=False)
        )
        marking.add_done_callback(functools.partial(self._marked, seq))

    def _marked(self, seq: int, marking: asyncio.Future[None]) -> None:
        if not marking.cancelled() and marking.exception() is not None:
            self._stale = True
            log.warning("could not record delivery of event %d to %s (it will be sent again): %s", seq,
                        self.target, marking.exception())

    async def retry_at(self, job: Job[Event | None], at: float, error: str) -> None:
        try:
            await self.log.write(lambda conn: mark(conn, self.target, int(job.id), "pending", job.attempts, error, at))
        finally:
            self._taken.discard(job.id)
        job.next_at, job.last_error = at, error

    async def dead(self, job: Job[Event | None], error: str) -> None:
        try:
            await self.log.write(lambda conn: mark(conn, self.target, int(job.id), "failed", job.attempts, error))
        finally:
            self._taken.discard(job.id)
        self._forget(job)

    async def size(self) -> int:
        return (await self.log.read(lambda conn: stats(conn, self.target))).pending


class TargetBacklog(Backlog[Event | None], Protocol):
    """One webhook's backlog as the dispatcher drives it."""

    def offer(self, job: Job[Event | None]) -> None:
        """A row just committed for this target (a hint: the store stays the truth)."""
        ...

    def invalidate(self) -> None:
        """Rows changed behind the backlog's back (a redelivery): read them again."""
        ...


class OutboxStore(Protocol):
    """Where the dispatcher's rows live, planned and read (see the module docstring)."""

    @property
    def epoch(self) -> str:
        """Part of every webhook-id (`msg_<epoch>_<seq>`)."""
        ...

    def connect(self, route: Router | None, committed: CommitListener | None, wake: Callable[[], None] | None) -> None:
        """Plan rows with `route`, hear of committed ones through `committed`, and call `wake` when rows
        may have become due elsewhere (another node); None disconnects."""
        ...

    def backlog(self, target: str) -> TargetBacklog: ...

    async def drop_target(self, target: str) -> int: ...

    async def deliveries(self, target: str, state: RowState | None, after: int, limit: int) -> list[Delivery]: ...

    async def redeliver(self, target: str, seqs: list[int] | None) -> int: ...

    async def stats(self, target: str) -> OutboxStats: ...

    async def release(self) -> None:
        """This node stops delivering: let others take over at once what it had claimed."""
        ...


class LocalOutbox:
    """`OutboxStore` over the node's own event log file."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    @property
    def epoch(self) -> str:
        return self.log.epoch

    def connect(self, route: Router | None, committed: CommitListener | None, wake: Callable[[], None] | None) -> None:
        self.log.set_router(route)
        if committed is not None:
            self.log.on_commit(committed)

    def backlog(self, target: str) -> TargetBacklog:
        return OutboxBacklog(self.log, target)

    async def drop_target(self, target: str) -> int:
        return await self.log.write(lambda conn: drop_target(conn, target))

    async def deliveries(self, target: str, state: RowState | None, after: int, limit: int) -> list[Delivery]:
        return await self.log.read(lambda conn: list_deliveries(conn, target, state, after, limit))

    async def redeliver(self, target: str, seqs: list[int] | None) -> int:
        return await self.log.write(lambda conn: redeliver(conn, target, seqs))

    async def stats(self, target: str) -> OutboxStats:
        return await self.log.read(lambda conn: stats(conn, target))

    async def release(self) -> None:
        """Nothing to release: only this process delivers these rows."""
