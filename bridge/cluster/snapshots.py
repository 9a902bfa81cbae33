"""Snapshots of cluster tenants in the database: content-addressed objects, immutable manifests.

The same shape as the file snapshots (`bridge.store.snapshots`), and the same records:
`bridge_snapshot_objects(sha256, data)` holds each distinct file content once (shared across
snapshots and tenants), `bridge_snapshot_manifests` holds `SnapshotManifest` encoded exactly as a
manifest file is, so both kinds read, verify and compare alike.

- `create` reads every file of the tenant in one REPEATABLE READ transaction (a consistent cut
  without stopping the writer: the database gives what the file backend's freeze gives) and
  stores the objects and then the manifest in that same transaction: a manifest never names an
  object that was not stored, and a failed snapshot leaves nothing.
- `verify` re-hashes every referenced object and names each missing or corrupt one.
- `restore` checks every object first, snapshots what the tenant holds now (`pre-restore`), then
  writes the snapshot's files through the tenant's fenced `PgAuthBackend` in one transaction:
  names the snapshot lacks go to the trash table, nothing is deleted. The caller holds the lease
  (the tenant is stopped everywhere else; the CLI claims it like a node would).
- `downgrade_hook` is what `AuthStore(before_creds_downgrade=...)` takes in cluster mode.

Objects and manifests are never deleted here: retention (bridge/cluster/retention.py) does, one node
at a time. `create` holds the objects lock shared around its transaction (taken before the
transaction's snapshot, released after its commit), so the retention, which holds it exclusively,
sees every manifest that may reuse an object before it decides which objects nothing references.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.errors import CredsCorruptError, ErrorCode, SnapshotError
from bridge.store.creds import is_registered, validate_creds_text
from bridge.store.layout import CREDS_FILE, is_bridge_private, parse_key_file_name, validate_session_id
from bridge.store.snapshots.manifests import PRE_RESTORE, SnapshotManifest, build_manifest, references
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.restore import RestoreOutcome
from bridge.store.snapshots.verify import Problem, VerifyReport

log = logging.getLogger(__name__)

_DECODER: Final = msgspec.json.Decoder(SnapshotManifest)


#: Names the advisory lock between snapshot creation (shared, held around its transaction) and the
#: retention's object collection (exclusive; bridge/cluster/retention.py): an object that a snapshot
#: being written reuses is never collected under it (ASCII "bridgeob").
OBJECTS_LOCK_KEY: Final = 0x627269646765_6F62


def object_ref(sha: str) -> str:
    """How an object is named in reports and errors (the row an operator can look at)."""
    return f"bridge_snapshot_objects/{sha}"


class PgSnapshots:
    """Snapshots of the cluster's tenants, in the database behind `pool`."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # ----- create ---------------------------------------------------------------------------
    def create(self, session_id: str, reason: str = "manual") -> SnapshotManifest:
        """Snapshot the tenant's auth state now; returns the stored manifest.

        Raises SnapshotError (`session_folder_missing`) when the tenant holds no file at all.
        """
        session_id = validate_session_id(session_id)
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (OBJECTS_LOCK_KEY,))
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                with conn.transaction():
                    manifest = self._create_in(conn, session_id, reason)
            finally:
                conn.isolation_level = None
                with contextlib.suppress(psycopg.OperationalError):  # a lost connection took its lock along
                    conn.execute("SELECT pg_advisory_unlock_shared(%s)", (OBJECTS_LOCK_KEY,))
        log.info("cluster snapshot %s of %s (%s): %d files", manifest.id, session_id, reason, len(manifest.files))
        return manifest

    def _create_in(self, conn: psycopg.Connection[TupleRow], session_id: str, reason: str) -> SnapshotManifest:
        rows = conn.execute(
            "SELECT name, data FROM bridge_auth_files WHERE session_id = %s ORDER BY name", (session_id,)
        ).fetchall()
        contents = {str(name): bytes(data) for name, data in rows if not is_bridge_private(str(name))}
        if not contents:
            raise SnapshotError(
                f"cannot snapshot session {session_id!r}: the cluster database holds no auth state for it",
                code=ErrorCode.SESSION_FOLDER_MISSING,
            )
        shas = [sha256_hex(data) for data in contents.values()]
        conn.execute(
            """
            INSERT INTO bridge_snapshot_objects AS o (sha256, data)
            SELECT * FROM unnest(%s::text[], %s::bytea[])
            ON CONFLICT (sha256) DO UPDATE SET data = excluded.data
            WHERE sha256(o.data) <> decode(o.sha256, 'hex')
            """,
            (shas, list(contents.values())),
        )
        snap_id, created = self._new_id(conn, session_id)
        manifest = build_manifest(session_id, snap_id, created, reason, contents, shas, f"cluster:{session_id}")
        conn.execute(
            "INSERT INTO bridge_snapshot_manifests (session_id, id, reason, registered, manifest) "
            "VALUES (%s, %s, %s, %s, %s)",
            (session_id, manifest.id, reason, manifest.registered, msgspec.json.encode(manifest)),
        )
        return manifest

    def _new_id(self, conn: psycopg.Connection[TupleRow], session_id: str) -> tuple[str, float]:
        """A time-sortable id (the file snapshots' format) strictly after the tenant's newest, by the DB clock."""
        row = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp())::float8, "
            "(SELECT max(id) FROM bridge_snapshot_manifests WHERE session_id = %s)",
            (session_id,),
        ).fetchone()
        assert row is not None
        now = float(row[0])
        newest = None if row[1] is None else self.get(session_id, str(row[1]), conn=conn)
        if newest is not None and now <= newest.created_at:
            now = newest.created_at + 1e-6
        stamp = datetime.fromtimestamp(now, UTC)
        return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond:06d}Z-{secrets.token_hex(3)}", now

    # ----- read -----------------------------------------------------------------------------
    def newest_first(self, session_id: str) -> list[SnapshotManifest]:
        """Every snapshot of a tenant, newest first."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, manifest FROM bridge_snapshot_manifests WHERE session_id = %s ORDER BY id DESC",
                (validate_session_id(session_id),),
            ).fetchall()
        return [_decode(session_id, str(i), bytes(m)) for i, m in rows]

    def get(
        self, session_id: str, snapshot_id: str, *, conn: psycopg.Connection[TupleRow] | None = None
    ) -> SnapshotManifest:
        """One snapshot by id (a unique prefix is accepted); SnapshotError when unknown or ambiguous."""
        query = (
            "SELECT id, manifest FROM bridge_snapshot_manifests WHERE session_id = %s "
            "AND (id = %s OR starts_with(id, %s)) ORDER BY id LIMIT 2"
        )
        params = (validate_session_id(session_id), snapshot_id, snapshot_id)
        if conn is None:
            with self.pool.connection() as own:
                rows = own.execute(query, params).fetchall()
        else:
            rows = conn.execute(query, params).fetchall()
        exact = [r for r in rows if r[0] == snapshot_id]
        rows = exact or rows
        if len(rows) != 1:
            what = "is ambiguous" if rows else "does not exist"
            raise SnapshotError(
                f"snapshot {snapshot_id!r} of session {session_id!r} {what} in the cluster database",
                code=ErrorCode.SNAPSHOT_AMBIGUOUS if rows else ErrorCode.SNAPSHOT_NOT_FOUND,
            )
        return _decode(session_id, str(rows[0][0]), bytes(rows[0][1]))

    def read_object(self, sha: str) -> bytes:
        """An object's bytes, checked against its name; SnapshotError when missing or corrupt."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT data FROM bridge_snapshot_objects WHERE sha256 = %s", (sha,)).fetchone()
        if row is None:
            raise SnapshotError(f"object {object_ref(sha)} is missing; restore from another snapshot")
        data = bytes(row[0])
        if sha256_hex(data) != sha:
            raise SnapshotError(f"object {object_ref(sha)} is corrupt (sha256 mismatch); use another snapshot")
        return data

    def latest_good(self, session_id: str, *, prefer_registered: bool = True) -> SnapshotManifest | None:
        """The newest snapshot (never a pre-restore one) whose objects verify and whose creds are valid;
        a linked one first when `prefer_registered`."""
        fallback: SnapshotManifest | None = None
        for manifest in self.newest_first(session_id):
            if manifest.reason == PRE_RESTORE or not self.verify(snapshot=manifest).ok:
                continue
            creds = self._creds_of(manifest)
            if creds is None:
                continue
            if is_registered(creds) or not prefer_registered:
                return manifest
            fallback = fallback or manifest
        return fallback

    def _creds_of(self, manifest: SnapshotManifest) -> dict[str, Any] | None:
        entry = manifest.entry(CREDS_FILE)
        if entry is None:
            return None
        try:
            return validate_creds_text(self.read_object(entry.sha256).decode("utf-8"))
        except (SnapshotError, CredsCorruptError, UnicodeDecodeError):
            return None

    # ----- verify ---------------------------------------------------------------------------
    def verify(self, *, session_id: str | None = None, snapshot: SnapshotManifest | None = None) -> VerifyReport:
        """Re-hash every object `snapshot`, a tenant's snapshots, or all snapshots reference."""
        report = VerifyReport(problems=[])
        manifests: list[SnapshotManifest] = []
        if snapshot is not None:
            manifests = [snapshot]
        else:
            with self.pool.connection() as conn:
                where, params = ("WHERE session_id = %s", (session_id,)) if session_id else ("", ())
                query = f"SELECT session_id, id, manifest FROM bridge_snapshot_manifests {where} ORDER BY 1, 2"
                rows = conn.execute(query.encode(), params).fetchall()
            for sid, snap_id, data in rows:
                try:
                    manifests.append(_decode(str(sid), str(snap_id), bytes(data)))
                except SnapshotError as exc:
                    ref = f"bridge_snapshot_manifests/{sid}/{snap_id}"
                    report.problems.append(Problem(kind="bad_manifest", path=ref, detail=str(exc)))
        refs, sizes = references(manifests)
        report.snapshots_checked = len(manifests)
        with self.pool.connection() as conn:
            found = {
                str(sha): bytes(data)
                for sha, data in conn.execute(
                    "SELECT sha256, data FROM bridge_snapshot_objects WHERE sha256 = ANY(%s::text[])", (sorted(refs),)
                ).fetchall()
            }
        for sha in sorted(refs):
            report.objects_checked += 1
            data = found.get(sha)
            if data is None:
                report.problems.append(Problem("missing", object_ref(sha), "object row does not exist", refs[sha]))
                continue
            report.bytes_checked += len(data)
            if sha256_hex(data) != sha or len(data) != sizes[sha]:
                detail = f"sha256 {sha256_hex(data)} size {len(data)}; expected {sha} size {sizes[sha]}"
                report.problems.append(Problem("corrupt", object_ref(sha), detail, refs[sha]))
        return report

    # ----- restore --------------------------------------------------------------------------
    def restore(self, backend: PgAuthBackend, snapshot_id: str) -> RestoreOutcome:
        """Put the snapshot back as the tenant's auth state, writing through its fenced `backend`.

        Refuses (SnapshotError, nothing changed) when an object is missing or corrupt; a stale
        lease refuses the write (`lease_lost`) after the pre-restore snapshot was taken.
        """
        session_id = backend.session_id
        manifest = self.get(session_id, snapshot_id)
        for entry in manifest.files:
            if "/" in entry.name or is_bridge_private(entry.name) or entry.name in ("", "..", "."):
                raise SnapshotError(f"snapshot {manifest.id} names an unsafe file {entry.name!r}; refusing")
        contents = {entry.name: self.read_object(entry.sha256) for entry in manifest.files}
        for entry in manifest.files:
            if len(contents[entry.name]) != entry.size:
                raise SnapshotError(f"object of {entry.name} in snapshot {manifest.id} has the wrong size; refusing")
        present = backend.list_names()
        pre_id = self.create(session_id, reason=PRE_RESTORE).id if present else None
        backend.commit(contents, [name for name in present if name not in contents])
        log.warning("restored cluster snapshot %s of %s (pre-restore snapshot: %s)", manifest.id, session_id, pre_id)
        return RestoreOutcome(
            restored=manifest,
            folder=f"cluster:{session_id}",
            pre_restore_snapshot=pre_id,
            replaced_path=None,
            keys_before=sum(1 for n in present if parse_key_file_name(n) is not None),
            keys_after=sum(1 for n in contents if parse_key_file_name(n) is not None),
        )

    def downgrade_hook(self, session_id: str) -> Callable[[str], object]:
        """`AuthStore(before_creds_downgrade=...)` for a cluster tenant: snapshot with the given reason."""
        return lambda reason: self.create(session_id, reason=reason)


def _decode(session_id: str, snapshot_id: str, data: bytes) -> SnapshotManifest:
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(
            f"manifest {snapshot_id} of session {session_id} in the cluster database is unreadable ({exc})"
        ) from exc
