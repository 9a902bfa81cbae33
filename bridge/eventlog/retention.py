"""Pruning the event log by age and by count, never an event a webhook still has to deliver.

Plan, then execute (restic's habit): `plan_prune` finds the newest sequence number that may go
(older than `max_age`, or beyond the newest `keep` events); `prune` deletes events up to it
except those with a pending or failed outbox row, and delivered outbox rows whose event is gone.
Runs inside one event log transaction, so SSE resume and delivery never see half a prune.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PruneResult:
    events: int
    deliveries: int


def plan_prune(conn: sqlite3.Connection, *, max_age: float, keep: int, now: float | None = None) -> int:
    """The highest seq that may be pruned (0: nothing)."""
    cutoff = (time.time() if now is None else now) - max_age
    (by_age,) = conn.execute("SELECT max(seq) FROM events WHERE ts < ?", (cutoff,)).fetchone()
    (newest,) = conn.execute("SELECT max(seq) FROM events").fetchone()
    by_count = int(newest or 0) - keep
    return max(int(by_age or 0), by_count, 0)


def prune(conn: sqlite3.Connection, *, max_age: float, keep: int, now: float | None = None) -> PruneResult:
    """Delete what `plan_prune` allows; undelivered outbox rows keep their events."""
    upto = plan_prune(conn, max_age=max_age, keep=keep, now=now)
    if upto <= 0:
        return PruneResult(0, 0)
    events = conn.execute(
        "DELETE FROM events WHERE seq <= ? AND NOT EXISTS "
        "(SELECT 1 FROM outbox o WHERE o.seq = events.seq AND o.state != 'delivered')",
        (upto,),
    ).rowcount
    deliveries = conn.execute(
        "DELETE FROM outbox WHERE state = 'delivered' AND seq <= ? AND NOT EXISTS "
        "(SELECT 1 FROM events e WHERE e.seq = outbox.seq)",
        (upto,),
    ).rowcount
    return PruneResult(events, deliveries)
