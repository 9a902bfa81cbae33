"""`MessageStore`: every message a session sent or received, durable, with its status history.

Why it lives in the event log's SQLite file (tables `messages`, `message_status`, see
bridge.eventlog.schema): its writes ride the log's bursts (`EventLog.hold`), so a message row is
committed no later than the `message` event published after it (a client that saw the event can
always GET the message and quote it), a burst of 100 messages costs one fsync, writes never run
on the event loop, and a full or failing disk is handled once: rows are held in memory and
written when it recovers, exactly like events.

In front of the file sits the bounded in-memory cache of recent messages (`RecentMessages`):
the desk's synchronous paths (status ordering, send planning) read it, and `fetch` fills it from
the file for anything older or from before a restart. Status writes are forward-only in the file
too (`bridge.messages.status.advance` against the stored status, inside the transaction), so a
status that arrives after a restart lands on the stored message and can never move it back.

What the file keeps that events never carry: `raw`, Baileys' WAMessage as proto JSON, needed to
quote, forward and answer Baileys' `getMessage`; for media it holds the media key.

Why the store knows recent ids: after a crash WhatsApp delivers again whatever the device had not
acknowledged, and a message the bridge had already stored (its receipt never reached the server)
must not become a second `message` event or webhook delivery. The cache is empty after a restart,
so the store takes the ids of the messages stored in the last week from the event log, which reads
them when it opens (`EventLog.recent_message_ids`, before any session can log in); `put` treats
such an id as known.

Without an open event log (a bus no log is attached to) the store is memory only.

In cluster mode the event log's relay copies every row a burst touched into the shared store
(`bridge.eventlog.shared.SharedMessages`, PostgreSQL), and a lookup the file cannot answer (a
message received while another node ran the tenant) asks it, bounded by `SHARED_WITHIN` s: a shared
store that is away or slow makes the message unknown (logged), never an error and never a stall.
What the shared store answers is cached in memory, not written to this node's file.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from bridge.eventlog.log import EventLog
from bridge.eventlog.shared import SharedMessage, SharedMessages
from bridge.events import EventBus
from bridge.messages.model import Message, MessageStatus
from bridge.messages.paging import page_query
from bridge.messages.recent import DEFAULT_PER_SESSION, Entry, RecentMessages
from bridge.messages.status import advance

log = logging.getLogger(__name__)
MAX_PAGE = 200
#: How long a lookup waits for the shared message store (cluster mode) before calling a message unknown.
SHARED_WITHIN = 3.0


@dataclass(frozen=True)
class MessageRetention:
    """How long stored messages are kept: `max_age` seconds since stored, newest `keep` per session."""

    max_age: float = 30 * 86400.0
    keep: int = 100_000


class StatusStep(msgspec.Struct, frozen=True, omit_defaults=True):
    """One step of a message's status history (`participant` in groups: whose receipt)."""

    status: MessageStatus
    at: float
    participant: str | None = None
    implied: bool = False


class StoredMessage(msgspec.Struct, frozen=True):
    """A stored message and (when asked for) its status history, oldest first."""

    message: Message
    history: list[StatusStep] = []


class PageCursorUnknown(Exception):
    """`before` names a message the store does not have."""


_STORES: weakref.WeakKeyDictionary[EventBus, MessageStore] = weakref.WeakKeyDictionary()
_decode_message = msgspec.json.Decoder(Message).decode
_encode = msgspec.json.Encoder().encode


class MessageStore:
    """See the module docstring. Create once per bus; safe to create before the log opens."""

    def __init__(self, bus: EventBus, *, per_session: int = DEFAULT_PER_SESSION,
                 retention: MessageRetention | None = None) -> None:
        self.bus = bus
        self.cache = RecentMessages(per_session)
        self.retention = retention or MessageRetention()
        self._pruning: EventLog | None = None
        self._known: dict[str, set[str]] = {}
        _STORES[bus] = self
        self._log()

    @staticmethod
    def of(bus: EventBus) -> MessageStore | None:
        """The store made for `bus` last (the message desk's), if any."""
        return _STORES.get(bus)

    def _log(self) -> EventLog | None:
        found = EventLog.of(self.bus)
        if found is not None and found is not self._pruning:
            self._pruning = found
            found.add_pruner(functools.partial(prune, max_age=self.retention.max_age, keep=self.retention.keep))
            self._known = found.recent_message_ids()
        return found

    def known(self, session: str, message_id: str) -> bool:
        """`message_id` is stored for `session` (in the cache, or in the file before this process started)."""
        return self.cache.get(session, message_id) is not None or message_id in self._known.get(session, ())

    # ----- writing (never blocks, never raises) ------------------------------------------------
    def put(self, message: Message, raw: dict[str, Any]) -> tuple[Entry, bool]:
        """Record `message` (cache now, file in the next burst); returns its entry and whether it is new
        to the store (False for a copy WhatsApp delivered again after a crash). A message already in the
        file keeps its stored status and first content."""
        eventlog = self._log()
        stored_before = message.id in self._known.get(message.session, ())
        entry, new = self.cache.put(message, raw)
        if stored_before:
            return entry, False
        if new and eventlog is not None:
            entry.sent_write = eventlog.hold(functools.partial(
                _insert, message=message, data=_encode(message).decode(), raw=_encode(raw).decode(), now=time.time()))
        return entry, new

    def revise(self, entry: Entry, message: Message) -> None:
        """Replace the content of the stored message `entry` (same session and id) with `message`, e.g. a
        poll with its tally; its raw WAMessage and status history stay."""
        entry.message = message
        eventlog = self._log()
        if eventlog is not None:
            eventlog.hold(functools.partial(_revise, session=message.session, message_id=message.id,
                                            data=_encode(message).decode(), now=time.time()))

    async def written(self, within: float = 5.0, *, entry: Entry | None = None) -> bool:
        """Wait until what was put and reported so far is in the file, or with `entry` only its row and
        its `sent` status (False after `within` s: the disk is failing and the rows stay held). A send
        answers only after its message is stored; with `entry` it does not wait for a later message's
        writes, nor for its own delivery receipt's."""
        eventlog = self._log()
        if eventlog is None:
            return True
        return await eventlog.held_written(within, upto=entry.sent_write if entry is not None else None)

    def get(self, session: str, message_id: str) -> Entry | None:
        """The cached entry (no I/O); `fetch` also looks in the file."""
        return self.cache.get(session, message_id)

    def set_status(self, entry: Entry, steps: Sequence[tuple[MessageStatus, bool]], participant: str = "") -> None:
        """`entry` moved through `steps` (from `advance`): cache now, file and history in the next burst."""
        if not steps:
            return
        self.cache.set_status(entry, steps[-1][0], participant)
        number = self.report(entry.message.session, entry.message.id, steps[-1][0], participant)
        if not participant and number and any(status is MessageStatus.SENT for status, _ in steps):
            entry.sent_write = max(entry.sent_write, number)

    def report(self, session: str, message_id: str, status: MessageStatus, participant: str = "") -> int:
        """A status for a message maybe only in the file (e.g. after a restart): applied there forward-only.
        Returns its held-write number (0 without an event log)."""
        eventlog = self._log()
        if eventlog is None:
            return 0
        return eventlog.hold(functools.partial(_apply_status, session=session, message_id=message_id, status=status,
                                               participant=participant, now=time.time()))

    def count_retry(self, session: str, message_id: str) -> None:
        """Baileys asked for this message again (a contact's retry receipt): counted in the file."""
        eventlog = self._log()
        if eventlog is not None:
            eventlog.hold(functools.partial(_count_retry, session=session, message_id=message_id))

    def forget(self, session: str) -> None:
        """Drop the session's cached messages (its stored ones stay until retention prunes them)."""
        self.cache.forget(session)

    # ----- reading ----------------------------------------------------------------------------
    async def fetch(self, session: str, message_id: str) -> Entry | None:
        """The entry from the cache, else from the file (then cached); None if unknown.
        Raises EventLogUnavailable when the file cannot be read."""
        entry = self.cache.get(session, message_id)
        if entry is not None:
            return entry
        eventlog = self._log()
        if eventlog is None:
            return None
        found = await eventlog.read(functools.partial(_load_entry, session=session, message_id=message_id))
        if found is None:
            shared = await self._from_shared(eventlog, session, message_id)
            if shared is None:
                return None
            statuses = {p: MessageStatus(s) for p, s in shared.statuses.items()}
            statuses[""] = MessageStatus(shared.status)
            found = _Loaded(_with_status(shared.data, shared.status), json.loads(shared.raw), statuses)
        entry = self.cache.get(session, message_id)  # a put may have raced the read
        if entry is None:
            entry, _ = self.cache.put(found.message, found.raw)
            entry.statuses.update(found.statuses)
        return entry

    async def page(self, session: str, *, chat: str | None = None, before: str | None = None,
                   limit: int = 50) -> list[Message]:
        """Messages of `session` (in `chat`), newest first, older than the message `before` (an id) or,
        when `before` is all digits, older than that Unix second. Raises PageCursorUnknown."""
        eventlog = self._log()
        if eventlog is None:
            return []
        limit = max(1, min(limit, MAX_PAGE))
        shared = _shared_of(eventlog)
        if shared is None:
            return await eventlog.read(functools.partial(_page, session=session, chat=chat, before=before,
                                                         limit=limit))
        anchor: tuple[int, float, str] | None = None
        before_ts = int(before) if before and before.isdigit() else None
        if before and before_ts is None:
            anchor = await eventlog.read(functools.partial(_anchor, session=session, message_id=before))
            if anchor is None:
                row = await self._from_shared(eventlog, session, before)
                if row is None:
                    raise PageCursorUnknown(before)
                anchor = (row.ts, row.stored_at, row.id)
        local = await eventlog.read(functools.partial(_page_rows, session=session, chat=chat, anchor=anchor,
                                                      before_ts=before_ts, limit=limit))
        merged = {key[2]: (key, message) for key, message in local}
        try:
            async with asyncio.timeout(SHARED_WITHIN):
                remote = await shared.page(session, chat, anchor, before_ts, limit)
        except Exception as exc:
            log.warning("session %s: the shared message store cannot be read (%s); listing this node's "
                        "messages only", session, exc)
            remote = []
        for row in remote:
            merged.setdefault(row.id, ((row.ts, row.stored_at, row.id), _with_status(row.data, row.status)))
        return [message for _, message in sorted(merged.values(), key=lambda kv: kv[0], reverse=True)[:limit]]

    async def stored(self, session: str, message_id: str) -> StoredMessage | None:
        """One stored message with its status history, or None."""
        eventlog = self._log()
        if eventlog is None:
            entry = self.cache.get(session, message_id)
            return StoredMessage(entry.message) if entry is not None else None
        found = await eventlog.read(functools.partial(_stored, session=session, message_id=message_id))
        if found is not None:
            return found
        shared = await self._from_shared(eventlog, session, message_id)
        if shared is None:
            return None
        history = [StatusStep(status=MessageStatus(status), at=at, participant=participant or None, implied=implied)
                   for participant, status, implied, at in shared.history]
        return StoredMessage(_with_status(shared.data, shared.status), history)

    async def content_for(self, session: str, remote_jid: str, message_id: str) -> tuple[dict[str, Any], int] | None:
        """What Baileys' `getMessage` needs: the WAMessage's `message` (proto JSON) and how often it was
        asked for already; None when the store does not have it (or it has no content)."""
        entry = self.cache.get(session, message_id)
        eventlog = self._log()
        retries = 0
        raw: dict[str, Any] | None = entry.raw if entry is not None else None
        if eventlog is not None:
            found = await eventlog.read(functools.partial(_raw_and_retries, session=session, message_id=message_id))
            if found is not None:
                raw = raw if raw is not None else found[0]
                retries = found[1]
            else:
                shared = await self._from_shared(eventlog, session, message_id)
                if shared is not None:
                    raw = raw if raw is not None else json.loads(shared.raw)
                    retries = shared.retries
        if raw is None:
            return None
        chat = (raw.get("key") or {}).get("remoteJid")
        if remote_jid and chat and chat != remote_jid and not _same_account(chat, remote_jid):
            return None
        content = raw.get("message")
        return (content, retries) if isinstance(content, dict) else None

    async def _from_shared(self, eventlog: EventLog, session: str, message_id: str) -> SharedMessage | None:
        """The shared store's row (cluster mode) of a message this node's file does not have; None when
        there is none, or the shared store cannot answer within `SHARED_WITHIN` s (logged)."""
        shared = _shared_of(eventlog)
        if shared is None:
            return None
        try:
            async with asyncio.timeout(SHARED_WITHIN):
                return await shared.message(session, message_id)
        except Exception as exc:
            log.warning("session %s: message %s is not in this node's store and the shared message store "
                        "cannot be read (%s); treated as unknown", session, message_id, exc)
            return None


def _shared_of(eventlog: EventLog) -> SharedMessages | None:
    return eventlog.shared.messages() if eventlog.shared is not None else None


def _same_account(a: str, b: str) -> bool:
    """`a` and `b` name the same chat up to a device suffix (`123:4@s.whatsapp.net`)."""
    def bare(jid: str) -> str:
        user, _, server = jid.partition("@")
        return f"{user.split(':', 1)[0]}@{server}"
    return bare(a) == bare(b)


# ----- SQL (run on the event log's writer or reader thread) ---------------------------------------
def _insert(conn: sqlite3.Connection, *, message: Message, data: str, raw: str, now: float) -> None:
    inserted = conn.execute(
        "INSERT OR IGNORE INTO messages (session, id, chat, from_me, kind, ts, status, data, raw, stored_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (message.session, message.id, message.chat, int(message.from_me), message.kind.value, message.timestamp,
         message.status.value, data, raw, now, now),
    ).rowcount
    if inserted:
        conn.execute("INSERT INTO message_status (session, id, participant, status, implied, ts) "
                     "VALUES (?, ?, '', ?, 0, ?)", (message.session, message.id, message.status.value, now))


def _revise(conn: sqlite3.Connection, *, session: str, message_id: str, data: str, now: float) -> None:
    conn.execute("UPDATE messages SET data = ?, updated_at = ? WHERE session = ? AND id = ?",
                 (data, now, session, message_id))


def _current(conn: sqlite3.Connection, session: str, message_id: str, participant: str) -> MessageStatus | None:
    if not participant:
        row = conn.execute("SELECT status FROM messages WHERE session = ? AND id = ?", (session, message_id)).fetchone()
        return MessageStatus(row[0]) if row else None
    if conn.execute("SELECT 1 FROM messages WHERE session = ? AND id = ?", (session, message_id)).fetchone() is None:
        return None
    row = conn.execute("SELECT status FROM message_status WHERE session = ? AND id = ? AND participant = ? "
                       "ORDER BY rowid DESC LIMIT 1", (session, message_id, participant)).fetchone()
    return MessageStatus(row[0]) if row else MessageStatus.PENDING


def _apply_status(conn: sqlite3.Connection, *, session: str, message_id: str, status: MessageStatus,
                  participant: str, now: float) -> None:
    current = _current(conn, session, message_id, participant)
    if current is None:
        return
    steps = advance(current, status)
    if not steps:
        return
    conn.executemany(
        "INSERT INTO message_status (session, id, participant, status, implied, ts) VALUES (?, ?, ?, ?, ?, ?)",
        [(session, message_id, participant, s.value, int(implied), now) for s, implied in steps],
    )
    if not participant:
        conn.execute("UPDATE messages SET status = ?, updated_at = ? WHERE session = ? AND id = ?",
                     (steps[-1][0].value, now, session, message_id))


def _count_retry(conn: sqlite3.Connection, *, session: str, message_id: str) -> None:
    conn.execute("UPDATE messages SET retries = retries + 1 WHERE session = ? AND id = ?", (session, message_id))


def _with_status(data: str, status: str) -> Message:
    message = _decode_message(data)
    return message if message.status.value == status else msgspec.structs.replace(message, status=MessageStatus(status))


@dataclass
class _Loaded:
    message: Message
    raw: dict[str, Any]
    statuses: dict[str, MessageStatus]


def _load_entry(conn: sqlite3.Connection, *, session: str, message_id: str) -> _Loaded | None:
    row = conn.execute("SELECT data, status, raw FROM messages WHERE session = ? AND id = ?",
                       (session, message_id)).fetchone()
    if row is None:
        return None
    statuses = {"": MessageStatus(row[1])}
    for participant, status in conn.execute(
        "SELECT participant, status FROM message_status WHERE session = ? AND id = ? AND participant != '' "
        "ORDER BY rowid", (session, message_id),
    ):
        statuses[participant] = MessageStatus(status)
    return _Loaded(_with_status(row[0], row[1]), json.loads(row[2]), statuses)


def _anchor(conn: sqlite3.Connection, *, session: str, message_id: str) -> tuple[int, float, str] | None:
    row = conn.execute("SELECT ts, stored_at, id FROM messages WHERE session = ? AND id = ?",
                       (session, message_id)).fetchone()
    return (int(row[0]), float(row[1]), str(row[2])) if row else None


def _page(conn: sqlite3.Connection, *, session: str, chat: str | None, before: str | None,
          limit: int) -> list[Message]:
    anchor: tuple[int, float, str] | None = None
    before_ts: int | None = None
    if before:
        if before.isdigit():
            before_ts = int(before)
        else:
            anchor = _anchor(conn, session=session, message_id=before)
            if anchor is None:
                raise PageCursorUnknown(before)
    return [message for _, message in _page_rows(conn, session=session, chat=chat, anchor=anchor,
                                                 before_ts=before_ts, limit=limit)]


def _page_rows(conn: sqlite3.Connection, *, session: str, chat: str | None, anchor: tuple[int, float, str] | None,
               before_ts: int | None, limit: int) -> list[tuple[tuple[int, float, str], Message]]:
    sql, args = page_query("messages", "ts, stored_at, id, data, status", session=session, chat=chat,
                           before_ts=before_ts, older_than=anchor, limit=limit)
    rows = conn.execute(sql, args).fetchall()
    return [((int(ts), float(at), str(mid)), _with_status(data, status)) for ts, at, mid, data, status in rows]


def rows_to_share(conn: sqlite3.Connection, *, keys: Sequence[tuple[str, str]]) -> list[SharedMessage]:
    """The file's rows of `keys` ((session, id); missing ones skipped) as the shared store keeps them:
    what the cluster relay copies after each burst (bridge/cluster/events.py)."""
    found: list[SharedMessage] = []
    for session, message_id in dict.fromkeys(keys):
        row = conn.execute("SELECT chat, ts, stored_at, status, data, raw, retries FROM messages "
                           "WHERE session = ? AND id = ?", (session, message_id)).fetchone()
        if row is None:
            continue
        history = [(str(p), str(st), bool(implied), float(at)) for p, st, implied, at in conn.execute(
            "SELECT participant, status, implied, ts FROM message_status WHERE session = ? AND id = ? ORDER BY rowid",
            (session, message_id))]
        statuses = {p: st for p, st, _, _ in history if p}
        found.append(SharedMessage(session=session, id=message_id, chat=str(row[0]), ts=int(row[1]),
                                   stored_at=float(row[2]), status=str(row[3]), data=str(row[4]), raw=str(row[5]),
                                   retries=int(row[6]), statuses=statuses, history=history))
    return found


def _stored(conn: sqlite3.Connection, *, session: str, message_id: str) -> StoredMessage | None:
    row = conn.execute("SELECT data, status FROM messages WHERE session = ? AND id = ?",
                       (session, message_id)).fetchone()
    if row is None:
        return None
    history = [
        StatusStep(status=MessageStatus(status), at=ts, participant=participant or None, implied=bool(implied))
        for participant, status, implied, ts in conn.execute(
            "SELECT participant, status, implied, ts FROM message_status WHERE session = ? AND id = ? ORDER BY rowid",
            (session, message_id),
        )
    ]
    return StoredMessage(_with_status(row[0], row[1]), history)


def _raw_and_retries(conn: sqlite3.Connection, *, session: str, message_id: str) -> tuple[dict[str, Any], int] | None:
    row = conn.execute("SELECT raw, retries FROM messages WHERE session = ? AND id = ?",
                       (session, message_id)).fetchone()
    return (json.loads(row[0]), int(row[1])) if row else None


def prune(conn: sqlite3.Connection, *, max_age: float, keep: int, now: float | None = None) -> int:
    """Delete messages stored longer than `max_age` s ago and all but the newest `keep` of each
    session, with their status history; returns how many messages went."""
    cutoff = (time.time() if now is None else now) - max_age
    doomed = conn.execute("SELECT session, id FROM messages WHERE stored_at < ?", (cutoff,)).fetchall()
    for (session,) in conn.execute("SELECT session FROM messages GROUP BY session HAVING count(*) > ?",
                                   (keep,)).fetchall():
        doomed.extend(conn.execute(
            "SELECT session, id FROM messages WHERE session = ? ORDER BY ts DESC, id DESC LIMIT -1 OFFSET ?",
            (session, keep),
        ).fetchall())
    if not doomed:
        return 0
    unique = list(dict.fromkeys((str(s), str(i)) for s, i in doomed))
    conn.executemany("DELETE FROM messages WHERE session = ? AND id = ?", unique)
    conn.executemany("DELETE FROM message_status WHERE session = ? AND id = ?", unique)
    return len(unique)
