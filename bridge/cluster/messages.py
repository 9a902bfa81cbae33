"""`PgMessages`: the message store's rows shared by the nodes (`cluster_messages`), see
bridge/eventlog/shared.py `SharedMessages`.

Why copied by the event relay and not written on the send/receive path: a message row commits in
the node's own SQLite file in the same transaction as its `message` event, so the relay that copies
each committed burst of events (bridge/cluster/events.py) copies, in the same PostgreSQL
transaction, the rows that burst's `message` and `message.status` events name, read from the file
after the burst committed. The upsert replaces the whole row: a later copy carries the later status
and history, so the newest write wins. A copy with a shorter status history than the shared row's
is stale (a node copying, after a restart, bursts from before it lost the tenant) and is skipped:
a row's history only grows.

A status for a message the owner's file does not have (received or sent on the node that ran the
tenant before, e.g. a read receipt that arrives after a hand-over) is applied to the shared row by
the same transaction, forward-only (`bridge.messages.status.advance`), like the file would.

Retention (`prune`) follows the message store's (`MessageRetention`: age since stored, newest
`keep` per session), run by the shared log's retention loop every `PRUNE_EVERY` passes, one node at
a time (an advisory lock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final

from psycopg import AsyncConnection, Connection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from bridge.eventlog.shared import SharedMessage
from bridge.events import Event, EventKind, canonical_kind
from bridge.messages.model import MessageStatus
from bridge.messages.paging import page_query
from bridge.messages.status import advance

#: Appended to `bridge.cluster.events.MIGRATIONS` (component "events").
MIGRATION: Final = """
    CREATE TABLE cluster_messages (
        session   text NOT NULL,
        id        text NOT NULL,
        chat      text NOT NULL,
        ts        bigint NOT NULL,
        stored_at double precision NOT NULL,
        status    text NOT NULL,
        data      text NOT NULL,
        raw       text NOT NULL,
        retries   integer NOT NULL,
        statuses  text NOT NULL,
        history   text NOT NULL,
        node_id   text NOT NULL,
        copied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session, id)
    );
    CREATE INDEX cluster_messages_page ON cluster_messages (session, ts DESC, stored_at DESC, id DESC);
    CREATE INDEX cluster_messages_by_stored ON cluster_messages (stored_at);
"""

#: The shared log prunes events every 60 s; messages every `PRUNE_EVERY`-th time (10 min).
PRUNE_EVERY: Final = 10
#: Names the advisory lock that lets one node at a time prune messages (ASCII "bridgems").
PRUNE_LOCK_KEY: Final = 0x6272696467656D73
_KINDS: Final = frozenset({EventKind.MESSAGE.value, EventKind.MESSAGE_STATUS.value})
_COLUMNS: Final = "session, id, chat, ts, stored_at, status, data, raw, retries, statuses, history"


def touched(events: Sequence[Event]) -> list[tuple[str, str]]:
    """The (session, message id) of every row `events` (a burst) wrote or changed, in order."""
    keys: dict[tuple[str, str], None] = {}
    for event in events:
        message_id = event.data.get("id") if isinstance(event.data, dict) else None
        if canonical_kind(event.kind) in _KINDS and event.session and isinstance(message_id, str):
            keys[(event.session, message_id)] = None
    return list(keys)


async def upsert(conn: AsyncConnection[TupleRow], rows: Sequence[SharedMessage], node_id: str) -> None:
    """Copy `rows` in the caller's transaction; a row already there is replaced unless its status history
    is longer than the copy's (the newer copy wins, a stale one is skipped)."""
    if not rows:
        return
    await conn.cursor().executemany(
        f"INSERT INTO cluster_messages ({_COLUMNS}, node_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (session, id) DO UPDATE SET chat = EXCLUDED.chat, ts = EXCLUDED.ts, "
        "stored_at = EXCLUDED.stored_at, status = EXCLUDED.status, data = EXCLUDED.data, raw = EXCLUDED.raw, "
        "retries = EXCLUDED.retries, statuses = EXCLUDED.statuses, history = EXCLUDED.history, "
        "node_id = EXCLUDED.node_id, copied_at = now() "
        "WHERE json_array_length(EXCLUDED.history::json) >= json_array_length(cluster_messages.history::json)",
        [(r.session, r.id, r.chat, r.ts, r.stored_at, r.status, r.data, r.raw, r.retries, json.dumps(r.statuses),
          json.dumps(r.history), node_id) for r in rows])


async def apply_statuses(conn: AsyncConnection[TupleRow], events: Sequence[Event],
                         local: set[tuple[str, str]]) -> None:
    """Apply the `message.status` events of `events` whose message is not in `local` (the keys the
    node's file had) to the shared rows, forward-only, in the caller's transaction."""
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        message_id, status = data.get("id"), data.get("status")
        if (canonical_kind(event.kind) != EventKind.MESSAGE_STATUS.value or not event.session
                or not isinstance(message_id, str) or not isinstance(status, str)
                or (event.session, message_id) in local):
            continue
        row = await (await conn.execute(
            "SELECT status, statuses, history FROM cluster_messages WHERE session = %s AND id = %s FOR UPDATE",
            (event.session, message_id))).fetchone()
        if row is None:
            continue
        participant = str(data.get("participant") or "")
        statuses: dict[str, str] = json.loads(row[1])
        current = statuses.get(participant, MessageStatus.PENDING.value) if participant else str(row[0])
        steps = advance(MessageStatus(current), MessageStatus(status))
        if not steps:
            continue
        history = json.loads(row[2])
        history.extend([participant, step.value, implied, event.ts] for step, implied in steps)
        whole = str(row[0])
        if participant:
            statuses[participant] = steps[-1][0].value
        else:
            whole = steps[-1][0].value
        await conn.execute(
            "UPDATE cluster_messages SET status = %s, statuses = %s, history = %s, copied_at = now() "
            "WHERE session = %s AND id = %s",
            (whole, json.dumps(statuses), json.dumps(history), event.session, message_id))


def prune(conn: Connection[TupleRow], *, max_age: float, keep: int, now: float | None = None) -> int:
    """Delete rows stored more than `max_age` s ago and all but the newest `keep` of each session
    (like `bridge.messages.store.prune`); how many went. One node at a time (advisory lock)."""
    cutoff = (time.time() if now is None else now) - max_age
    with conn.transaction():
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (PRUNE_LOCK_KEY,)).fetchone()
        if row is None or not row[0]:
            return 0
        gone = conn.execute("DELETE FROM cluster_messages WHERE stored_at < %s", (cutoff,)).rowcount
        gone += conn.execute(
            "DELETE FROM cluster_messages m USING (SELECT session, id, row_number() OVER "
            "(PARTITION BY session ORDER BY ts DESC, id DESC) AS n FROM cluster_messages WHERE session IN "
            "(SELECT session FROM cluster_messages GROUP BY session HAVING count(*) > %s)) r "
            "WHERE m.session = r.session AND m.id = r.id AND r.n > %s", (keep, keep)).rowcount
    return gone


def _row(row: Sequence[Any]) -> SharedMessage:
    return SharedMessage(
        session=str(row[0]), id=str(row[1]), chat=str(row[2]), ts=int(row[3]), stored_at=float(row[4]),
        status=str(row[5]), data=str(row[6]), raw=str(row[7]), retries=int(row[8]), statuses=json.loads(row[9]),
        history=[(str(p), str(s), bool(i), float(a)) for p, s, i, a in json.loads(row[10])])


class PgMessages:
    """The reads of `cluster_messages` (`SharedMessages`); errors propagate (the store fails soft)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def message(self, session: str, message_id: str) -> SharedMessage | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                f"SELECT {_COLUMNS} FROM cluster_messages WHERE session = %s AND id = %s",
                (session, message_id))).fetchone()
        return _row(row) if row else None

    async def page(self, session: str, chat: str | None, older_than: tuple[int, float, str] | None,
                   before_ts: int | None, limit: int) -> list[SharedMessage]:
        sql, args = page_query("cluster_messages", _COLUMNS, session=session, chat=chat, before_ts=before_ts,
                               older_than=older_than, limit=limit, mark="%s")
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, args)).fetchall()
        return [_row(r) for r in rows]
