"""`SessionSnapshots`: what a cluster node's sessions and its snapshot API use, over `PgSnapshots`.

Sessions, their auth wrapper, the manager and the API's snapshot routes call these of the
snapshot facade: `create` (before a creds downgrade, at logout, ban and archive, on request),
`list`, `verify`, `latest`, `latest_good` (are there linked creds to restore when the creds are
missing?), `restore`. In file mode those read the session's folder; a cluster node's folder is
empty scratch, so here they go to the tenant's rows:

- `create` snapshots the tenant's rows (so the snapshot before a downgrade really holds the old
  linked creds, wherever the tenant runs next);
- `latest_good` answers only when the tenant's creds are missing *in the database*: it is asked
  when creds look missing, and a folder without creds.json is normal on a cluster node. While the
  database holds creds it returns None, so nothing is ever restored over live state;
- `restore` writes through a fenced backend under this node's lease epoch (`lease_lost` when the
  node does not hold the tenant);
- `newest_intact_creds` reads the tenant's creds history in the database (bridge/cluster/
  creds_history.py), then its snapshots, like file mode reads `.bridge/creds-history/` first: the
  same answer on every node, whichever node saved the creds.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.creds_history import PgCredsHistory
from bridge.cluster.db import LeaseLostError, with_retry
from bridge.cluster.snapshots import PgSnapshots
from bridge.errors import SnapshotError
from bridge.store.creds_history import linked_creds_of
from bridge.store.identity import Identity
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots.manifests import SnapshotManifest
from bridge.store.snapshots.verify import VerifyReport

READ_BOUND = 10.0


class SessionSnapshots:
    """See the module docstring. `epoch_of`: this node's lease epoch of a tenant (None: not held)."""

    def __init__(self, pool: ConnectionPool, node_id: str, epoch_of: Callable[[str], int | None]) -> None:
        self.pool = pool
        self.node_id = node_id
        self.epoch_of = epoch_of
        self.pg = PgSnapshots(pool)
        self.history = PgCredsHistory(pool)

    def create(self, session_id: str, reason: str = "manual") -> SnapshotManifest:
        return self.pg.create(session_id, reason)

    def list(self, session_id: str) -> list[SnapshotManifest]:
        """Every snapshot of the tenant, newest first."""
        return self.pg.newest_first(session_id)

    def verify(self, snapshot: SnapshotManifest | None = None, *, session_id: str | None = None) -> VerifyReport:
        """Re-hash every object of `snapshot` (or of a tenant's snapshots)."""
        return self.pg.verify(session_id=session_id, snapshot=snapshot)

    def latest(self, session_id: str, *, registered: bool = False) -> SnapshotManifest | None:
        return next((m for m in self.pg.newest_first(session_id) if m.registered or not registered), None)

    def latest_good(
        self, session_id: str, *, registered: bool = False, prefer_registered: bool = False
    ) -> SnapshotManifest | None:
        if self._holds_creds(session_id):
            return None
        found = self.pg.latest_good(session_id, prefer_registered=registered or prefer_registered)
        return None if found is None or (registered and not found.registered) else found

    def restore(self, session_id: str, snapshot_id: str) -> SnapshotManifest:
        epoch = self.epoch_of(session_id)
        if epoch is None:
            raise LeaseLostError(f"session {session_id}: this node holds no lease on it; restore it on its owner "
                                 "node (or stop it and use the CLI)")
        backend = PgAuthBackend(self.pool, session_id, node_id=self.node_id, epoch=epoch)
        return self.pg.restore(backend, snapshot_id).restored

    def newest_intact_creds(self, session_id: str, identity: Identity) -> tuple[str, str] | None:
        """(creds text, where it came from) of the newest valid, registered creds of `identity`: the
        creds history first (normally the creds last saved), then the snapshots newest first."""
        found = self.history.newest_intact(session_id, identity)
        if found is not None:
            return found
        for manifest in self.pg.newest_first(session_id):
            entry = manifest.entry(CREDS_FILE)
            if entry is None:
                continue
            try:
                data = self.pg.read_object(entry.sha256)
            except SnapshotError:
                continue
            if linked_creds_of(data, identity) is not None:
                return data.decode("utf-8"), f"snapshot {manifest.id} ({manifest.reason}, {manifest.created_iso})"
        return None

    def _holds_creds(self, session_id: str) -> bool:
        def step(conn: psycopg.Connection[TupleRow]) -> bool:
            row = conn.execute(
                "SELECT 1 FROM bridge_auth_files WHERE session_id = %s AND name = %s", (session_id, CREDS_FILE)
            ).fetchone()
            return row is not None

        return with_retry(self.pool, step, what=f"session {session_id}: looking for its creds", bound=READ_BOUND)
