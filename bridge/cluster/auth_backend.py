"""`PgAuthBackend`: one cluster tenant's auth state in PostgreSQL, every write fenced by its lease epoch.

The rows hold what the legacy folder holds: `bridge_auth_files(session_id, name, data)` with `name`
the legacy file name (`creds.json`, `<type>-<id>.json`) and `data` its exact bytes, so an export
writes a folder byte-identical to what the bridge acknowledged. `AuthStore` keeps every rule
(creds never deleted or downgraded without a snapshot, validation); this class keeps bytes.

`commit(writes, trash)` is ONE statement, hence one transaction and one round trip:
1. `fence`: the tenant's lease row, locked `FOR SHARE`, only if it still names this node and
   epoch. A concurrent claim (which bumps the epoch) waits for the commit, or the commit sees the
   new epoch and writes nothing: no write of epoch e can commit after epoch e + 1 was granted.
2. upsert of every written name, trash of every trashed name (the row moves into
   `bridge_auth_trash`, never deleted), both conditional on the fence.
If the fence is empty, nothing was written and `LeaseLostError` (code `lease_lost`) names the
current owner: the caller must stop the tenant at once.

A batch that writes `creds.json` also keeps the **creds history** (`bridge_creds_history`, the
cluster's `.bridge/creds-history/`, see `bridge.store.creds_history`) in that same statement, so
the history moves with the tenant and holds exactly what was committed: the creds being replaced
(unless kept already) and the new ones (a text seen again moves to the front), the oldest beyond
`history_keep` distinct texts dropped. Whoever writes creds (a node's `AuthStore`, `import`, a
snapshot restore) leaves the previous creds restorable this way. `AuthStore` keeps no history of
its own on the node (`keep_creds_history=False`).

While the database is unreachable (a restart) a commit is retried for at most `write_wait`
seconds, then `ClusterUnavailableError`. Retrying is safe: a batch holds full contents, and a
trash that already happened finds nothing to move the second time.

There is no local file: `checkpoint` has nothing to do (an acknowledged commit is already durable in
the database, by PostgreSQL's own WAL) and `close` only forgets the pool it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from bridge.cluster.db import LeaseLostError, with_retry
from bridge.errors import StoreError
from bridge.store.creds_history import DEFAULT_KEEP
from bridge.store.layout import CREDS_FILE, is_bridge_private, validate_session_id
from bridge.store.snapshots.objects import sha256_hex

#: Default bound on how long a read or write waits for a restarting database (s).
WRITE_WAIT: Final = 30.0

_FENCED_WRITES: Final = b"""
WITH fence AS (
    SELECT epoch FROM bridge_leases
    WHERE session_id = %(sid)s AND node_id = %(node)s AND epoch = %(epoch)s
    FOR SHARE
), written AS (
    INSERT INTO bridge_auth_files AS f (session_id, name, data, epoch, updated_at)
    SELECT %(sid)s, w.name, w.data, %(epoch)s, now()
    FROM unnest(%(names)s::text[], %(datas)s::bytea[]) AS w(name, data)
    WHERE EXISTS (SELECT 1 FROM fence)
    ON CONFLICT (session_id, name) DO UPDATE
        SET data = excluded.data, epoch = excluded.epoch, updated_at = excluded.updated_at
    RETURNING 1
), trashed AS (
    DELETE FROM bridge_auth_files f
    WHERE f.session_id = %(sid)s AND f.name = ANY(%(trash)s::text[]) AND EXISTS (SELECT 1 FROM fence)
    RETURNING f.name, f.data
), kept AS (
    INSERT INTO bridge_auth_trash (session_id, name, data, epoch)
    SELECT %(sid)s, name, data, %(epoch)s FROM trashed
    RETURNING 1
)"""
_RESULT: Final = b"""
SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM written), (SELECT count(*) FROM kept)
"""
_COMMIT: Final = _FENCED_WRITES + _RESULT

#: What a batch that writes creds.json adds to `_COMMIT`: the creds history, under the same fence.
#: `old` is the creds being replaced (read before this statement's own writes); the two history rows
#: get consecutive `seq`s from one `nextval` (old first), and the trim keeps `keep` texts in all.
_CREDS_HISTORY: Final = b"""
, old AS (
    SELECT f.data, encode(sha256(f.data), 'hex') AS sha FROM bridge_auth_files f
    WHERE f.session_id = %(sid)s AND f.name = 'creds.json' AND EXISTS (SELECT 1 FROM fence)
      AND encode(sha256(f.data), 'hex') <> %(creds_sha)s
), old_unkept AS (
    SELECT count(*) AS n FROM old WHERE NOT EXISTS
        (SELECT 1 FROM bridge_creds_history x WHERE x.session_id = %(sid)s AND x.sha256 = old.sha)
), stamp AS MATERIALIZED (
    SELECT nextval('bridge_creds_history_seq') * 2 AS n FROM fence
), history_old AS (
    INSERT INTO bridge_creds_history (session_id, sha256, seq, data, epoch, node_id)
    SELECT %(sid)s, old.sha, stamp.n, old.data, %(epoch)s, %(node)s FROM old, stamp
    ON CONFLICT (session_id, sha256) DO NOTHING
    RETURNING 1
), history_new AS (
    INSERT INTO bridge_creds_history AS h (session_id, sha256, seq, data, epoch, node_id)
    SELECT %(sid)s, %(creds_sha)s, stamp.n + 1, %(creds)s, %(epoch)s, %(node)s FROM stamp
    ON CONFLICT (session_id, sha256) DO UPDATE
        SET seq = excluded.seq, epoch = excluded.epoch, node_id = excluded.node_id, kept_at = now()
    RETURNING 1
), history_dropped AS (
    DELETE FROM bridge_creds_history h
    WHERE h.session_id = %(sid)s AND EXISTS (SELECT 1 FROM fence) AND h.sha256 IN (
        SELECT e.sha256 FROM bridge_creds_history e
        WHERE e.session_id = %(sid)s AND e.sha256 <> %(creds_sha)s
        ORDER BY e.seq DESC
        OFFSET greatest(%(keep)s - 1 - (SELECT n FROM old_unkept), 0)
    )
    RETURNING 1
)"""
_COMMIT_CREDS: Final = _FENCED_WRITES + _CREDS_HISTORY + _RESULT


class PgAuthBackend:
    """The `AuthBackend` of one cluster tenant, writing as `node_id` with lease `epoch`.

    `pool` is shared by every tenant of the node (synchronous: `AuthStore` runs in worker threads)
    and is not closed here. A node that wins the tenant again gets a new epoch and a new backend.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        session_id: str,
        *,
        node_id: str,
        epoch: int,
        write_wait: float = WRITE_WAIT,
        history_keep: int = DEFAULT_KEEP,
    ) -> None:
        self.pool = pool
        self.session_id = validate_session_id(session_id)
        self.node_id = node_id
        self.epoch = epoch
        self.write_wait = write_wait
        self.history_keep = max(history_keep, 1)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"session {self.session_id}: the cluster auth backend is closed")

    def read(self, names: Sequence[str]) -> dict[str, bytes | None]:
        """The newest committed bytes of each name (None: absent or trashed)."""
        self._check_open()
        wanted = list(dict.fromkeys(names))

        def step(conn: psycopg.Connection[TupleRow]) -> dict[str, bytes]:
            rows = conn.execute(
                "SELECT name, data FROM bridge_auth_files WHERE session_id = %s AND name = ANY(%s::text[])",
                (self.session_id, wanted),
            ).fetchall()
            return {str(name): bytes(data) for name, data in rows}

        found = with_retry(
            self.pool, step, what=f"session {self.session_id}: reading auth state", bound=self.write_wait
        )
        return {name: found.get(name) for name in names}

    def list_names(self) -> list[str]:
        """Every name that has a value (bridge-private dot names never are stored)."""
        self._check_open()

        def step(conn: psycopg.Connection[TupleRow]) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM bridge_auth_files WHERE session_id = %s ORDER BY name", (self.session_id,)
            ).fetchall()
            return [str(r[0]) for r in rows]

        names = with_retry(
            self.pool, step, what=f"session {self.session_id}: listing auth state", bound=self.write_wait
        )
        return [n for n in names if not is_bridge_private(n)]

    def commit(self, writes: Mapping[str, bytes], trash: Sequence[str]) -> None:
        """One fenced transaction (see module docstring). Raises `LeaseLostError` when the epoch is stale."""
        self._check_open()
        trash = list(dict.fromkeys(trash))
        _check_batch(self.session_id, writes, trash)
        if not writes and not trash:
            return
        params: dict[str, Any] = {
            "sid": self.session_id,
            "node": self.node_id,
            "epoch": self.epoch,
            "names": list(writes),
            "datas": [bytes(v) for v in writes.values()],
            "trash": trash,
        }

        statement = _COMMIT
        creds = writes.get(CREDS_FILE)
        if creds is not None:
            statement = _COMMIT_CREDS
            params.update(creds=bytes(creds), creds_sha=sha256_hex(bytes(creds)), keep=self.history_keep)

        def step(conn: psycopg.Connection[TupleRow]) -> tuple[int, ...]:
            row = conn.execute(statement, params).fetchone()
            assert row is not None
            return tuple(int(v) for v in row)

        fenced, _, _ = with_retry(
            self.pool, step, what=f"session {self.session_id}: writing auth state", bound=self.write_wait
        )
        if not fenced:
            raise LeaseLostError(self._lost_message())

    def _lost_message(self) -> str:
        def step(conn: psycopg.Connection[TupleRow]) -> tuple[Any, ...] | None:
            return conn.execute(
                "SELECT node_id, epoch FROM bridge_leases WHERE session_id = %s", (self.session_id,)
            ).fetchone()

        try:
            row = with_retry(self.pool, step, what="reading the lease", bound=min(self.write_wait, 5.0))
        except StoreError:
            row = None
        now = "unknown" if row is None else f"node {row[0] or '(none)'} with epoch {row[1]}"
        return (
            f"session {self.session_id}: write refused, the lease of node {self.node_id} with epoch {self.epoch} "
            f"is stale (current owner: {now}); nothing was written. This node must stop the session."
        )

    def checkpoint(self) -> None:
        """Nothing to do: every acknowledged commit is already durable in the database."""
        self._check_open()

    def close(self) -> None:
        """Forget the pool (it belongs to the node); the backend is unusable afterwards."""
        self._closed = True


def _check_batch(session_id: str, writes: Mapping[str, bytes], trash: Sequence[str]) -> None:
    """Refuse what the file backend would refuse, before anything is sent."""
    if CREDS_FILE in trash:
        raise StoreError(f"session {session_id}: creds.json can never be trashed; batch refused")
    both = set(writes).intersection(trash)
    if both:
        raise StoreError(f"session {session_id}: {sorted(both)[0]} is both written and trashed in one batch; refused")
    for name in [*writes, *trash]:
        if not name or "/" in name or "\x00" in name or name in (".", "..") or is_bridge_private(name):
            raise StoreError(f"session {session_id}: {name!r} is not a legacy auth file name; batch refused")
