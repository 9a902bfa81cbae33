"""One page of a session's messages: the filter and order, written once for both places that
keep rows (the node's event log in SQLite, `bridge.messages.store`; the cluster's shared table in
PostgreSQL, `bridge.cluster.messages`), so a listing merged from the two pages the same way.

Newest first by (ts, stored_at, id): within one second (WhatsApp's resolution) the order the bridge
stored them in decides, and the id breaks the last tie so a cursor never skips or repeats a row.
"""

from __future__ import annotations

#: A message's place in the listing: (ts, stored_at, id).
Anchor = tuple[int, float, str]


def page_query(table: str, columns: str, *, session: str, chat: str | None, before_ts: int | None,
               older_than: Anchor | None, limit: int, mark: str = "?") -> tuple[str, tuple[object, ...]]:
    """SELECT `columns` of `table` for one page and its arguments; `mark` is the driver's
    placeholder (`?` for sqlite3, `%s` for psycopg)."""
    where = [f"session = {mark}"]
    args: list[object] = [session]
    if chat:
        where.append(f"chat = {mark}")
        args.append(chat)
    if before_ts is not None:
        where.append(f"ts < {mark}")
        args.append(before_ts)
    if older_than is not None:
        where.append(f"(ts, stored_at, id) < ({mark}, {mark}, {mark})")
        args.extend(older_than)
    sql = (f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
           f"ORDER BY ts DESC, stored_at DESC, id DESC LIMIT {mark}")
    return sql, (*args, limit)
