"""Following the log: what an SSE client missed (from disk), then live committed events.

Why subscribe first and read second: an event committed between the disk read and the
subscription would otherwise fall in the crack. The live queue is opened before the read, and
anything it yields at or below the last event read is skipped, so the stream has no gap and no
duplicate, across bridge restarts too (the past comes from the file, not from memory).

In cluster mode (`EventLog.shared`) the past comes from the shared log and the live events are
the shared log's, numbered by it, of every node: any node serves any tenant's stream.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import AsyncIterator

from bridge.eventlog.log import EventLog
from bridge.events import Event, EventBus

PAGE = 500


def events_after(conn: sqlite3.Connection, after: int, session: str | None, limit: int = PAGE) -> list[Event]:
    """Up to `limit` events with seq > `after` (of one session, if given), oldest first."""
    if session is None:
        rows = conn.execute(
            "SELECT seq, ts, session, kind, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT seq, ts, session, kind, data FROM events WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session, after, limit),
        ).fetchall()
    return [Event(seq=int(r[0]), ts=float(r[1]), session=r[2], kind=str(r[3]), data=json.loads(r[4])) for r in rows]


def oldest_seq(conn: sqlite3.Connection) -> int:
    """The oldest seq still in the log (0 when empty)."""
    (found,) = conn.execute("SELECT min(seq) FROM events").fetchone()
    return int(found or 0)


async def oldest(log: EventLog) -> int:
    """The oldest seq a stream can still replay (the shared log's in cluster mode)."""
    if log.shared is not None:
        return await log.shared.oldest_seq()
    return await log.read(oldest_seq)


async def _page(log: EventLog, after: int, session: str | None) -> list[Event]:
    if log.shared is not None:
        return await log.shared.events_after(after, session, PAGE)
    return await log.read(functools.partial(events_after, after=after, session=session))


async def follow(bus: EventBus, log: EventLog | None, session: str | None, after: int | None) -> AsyncIterator[Event]:
    """Events after `after` from the log, then live committed ones, until cancelled.

    Without a log (or with `after` None) only live events are yielded.
    """
    live = bus.open_subscription(session, committed=True)
    try:
        last = after if after is not None else bus.committed_seq
        must_read = after is not None
        seen_dropped = 0
        while True:
            if must_read and log is not None:
                seen_dropped = live.dropped
                while True:
                    page = await _page(log, last, session)
                    for event in page:
                        last = event.seq
                        yield event
                    if len(page) < PAGE:
                        break
            event = await live.next()
            if log is not None and live.dropped > seen_dropped:
                must_read = True  # the live queue overflowed meanwhile: what it lost is on disk
                continue
            must_read = False
            if event.seq > last:
                last = event.seq
                yield event
    finally:
        live.close()
