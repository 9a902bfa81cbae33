"""The event log's SQLite file: its tables, and how a connection to it is opened.

Why these pragmas: WAL lets readers (SSE resume, the delivery API) run beside the one writer;
`synchronous=FULL` makes each commit durable against power loss, affordable because the writer
commits one transaction per burst (group commit), not one per event. `busy_timeout` covers the
moments a checkpoint holds the lock.

Tables:
- `events`: one row per event, `seq` the bus's sequence number (assigned before the row is
  written, so a new file continues the numbering of the running bridge).
- `outbox`: one row per (webhook target, event) to deliver; `state` pending -> delivered, or
  pending -> failed (the dead-letter list) after the retry horizon; `lane` is the session (or "")
  so a session's events are delivered in order.
- `messages`: the message store (bridge.messages.store), one row per (session, message id):
  the `Message` model as JSON, the latest status, and Baileys' WAMessage as proto JSON (`raw`,
  needed to quote, forward and answer Baileys' getMessage; it may hold media keys, which never
  leave this file in events or webhooks). Indexed by session+chat+timestamp and by id.
  `message_status`: every status step of a message (per participant in groups), its history.
  In this file, not a sibling, so a message row and its `message` event commit in one
  transaction: a client that saw the event can always GET the message.
- `meta`: `epoch`, a random id of this file, part of every webhook-id so ids never repeat even
  if the file is lost and the numbering starts again.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

SCHEMA_VERSION = 2

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    session TEXT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session, seq);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
CREATE TABLE IF NOT EXISTS outbox (
    target TEXT NOT NULL,
    seq INTEGER NOT NULL,
    lane TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    done_at REAL,
    PRIMARY KEY (target, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_heads ON outbox (target, state, lane, seq);
CREATE INDEX IF NOT EXISTS outbox_by_seq ON outbox (seq, state);
CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL,
    id TEXT NOT NULL,
    chat TEXT NOT NULL,
    from_me INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    stored_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    retries INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (session, chat, ts, id);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (session, ts, id);
CREATE INDEX IF NOT EXISTS messages_by_stored ON messages (stored_at);
CREATE TABLE IF NOT EXISTS message_status (
    session TEXT NOT NULL,
    id TEXT NOT NULL,
    participant TEXT NOT NULL,
    status TEXT NOT NULL,
    implied INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS message_status_by_id ON message_status (session, id, ts);
"""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the log (creating it and its tables unless `readonly`). Raises sqlite3.Error."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        # Owner-only: events hold message texts, QR references and pairing codes. SQLite gives its
        # -wal and -shm files the mode of the database file, so creating that one 0600 is enough.
        path.touch(mode=0o600, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(DDL)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (secrets.token_hex(6),))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("SELECT count(*) FROM meta").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def epoch_of(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    return str(row[0]) if row else ""


def last_seq_of(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(seq) FROM events").fetchone()
    return int(row[0] or 0)
