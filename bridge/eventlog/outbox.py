"""The webhook outbox: one row per (target, event) in the event log's file.

Rows are created in the same transaction as their event (`EventLog` asks the router), so an
event on disk always has its deliveries planned. A row leaves `pending` only after the receiver
answered 2xx (`delivered`) or the retry horizon passed (`failed`, the dead-letter list, kept
until redelivered or the webhook is removed). `OutboxBacklog` is the `delivery.Backlog` of one
target: the head of each lane (a session) only, so a session's events arrive in order.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from bridge.delivery import Job
from bridge.eventlog.log import EventLog
from bridge.events import Event

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


def heads(conn: sqlite3.Connection, target: str) -> list[tuple[str, int, float]]:
    """(lane, seq, next_at) of the oldest pending row of each lane."""
    rows = conn.execute(
        "SELECT o.lane, o.seq, o.next_at FROM "
        "(SELECT lane, min(seq) AS seq FROM outbox WHERE target = ? AND state = 'pending' GROUP BY lane) h "
        "JOIN outbox o ON o.target = ? AND o.seq = h.seq ORDER BY o.seq",
        (target, target),
    ).fetchall()
    return [(str(lane), int(seq), float(next_at)) for lane, seq, next_at in rows]


def load_jobs(conn: sqlite3.Connection, target: str, seqs: list[int]) -> list[Job[Event | None]]:
    """The rows `seqs` of `target` with their events (None when the event is gone)."""
    jobs: list[Job[Event | None]] = []
    for seq in seqs:
        row = conn.execute(
            "SELECT o.lane, o.attempts, o.created_at, o.next_at, o.last_error, e.ts, e.session, e.kind, e.data "
            "FROM outbox o LEFT JOIN events e ON e.seq = o.seq WHERE o.target = ? AND o.seq = ?",
            (target, seq),
        ).fetchone()
        if row is None:
            continue
        jobs.append(Job(id=str(seq), payload=_event(row, 5, seq), key=str(row[0]), attempts=int(row[1]),
                        created_at=float(row[2]), next_at=float(row[3]), last_error=str(row[4])))
    return jobs


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


class OutboxBacklog:
    """`delivery.Backlog` over one target's outbox rows (payload: the event, None if gone)."""

    def __init__(self, log: EventLog, target: str) -> None:
        self.log = log
        self.target = target

    async def take_due(self, now: float, limit: int, busy: frozenset[str]) -> list[Job[Event | None]]:
        def query(conn: sqlite3.Connection) -> list[Job[Event | None]]:
            due = [seq for lane, seq, at in heads(conn, self.target) if at <= now and lane not in busy][:limit]
            return load_jobs(conn, self.target, due)

        return await self.log.read(query)

    async def next_due(self, busy: frozenset[str]) -> float | None:
        found = await self.log.read(lambda conn: heads(conn, self.target))
        return min((at for lane, _, at in found if lane not in busy), default=None)

    async def delivered(self, job: Job[Event | None]) -> None:
        await self.log.write(lambda conn: mark(conn, self.target, int(job.id), "delivered", job.attempts, ""))

    async def retry_at(self, job: Job[Event | None], at: float, error: str) -> None:
        await self.log.write(lambda conn: mark(conn, self.target, int(job.id), "pending", job.attempts, error, at))

    async def dead(self, job: Job[Event | None], error: str) -> None:
        await self.log.write(lambda conn: mark(conn, self.target, int(job.id), "failed", job.attempts, error))

    async def size(self) -> int:
        return (await self.log.read(lambda conn: stats(conn, self.target))).pending
