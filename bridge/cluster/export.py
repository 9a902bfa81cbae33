"""Move a tenant between the cluster database and a legacy `useMultiFileAuthState` folder.

`export_tenant` (rollback to a legacy setup, or a copy for inspection) reads every file of the
tenant in one REPEATABLE READ transaction, a consistent cut even while a node writes, and writes
the exact bytes into a new folder through `durable` (a staging folder beside the target, every file
fsynced, then one rename), so the target is either absent or complete. It refuses a target that
holds anything: an export never overwrites a folder. It does not stop the tenant: a legacy process
must not use the folder while a node still runs the tenant (the report names the owner).

`import_tenant` (migration into the cluster) reads a legacy folder, validates creds.json and
every key file before anything is written, takes the tenant's lease like a node would (refused
while a live node owns it), snapshots the state the database held for the tenant (if any; reason
`pre-import`), writes the folder's files and trashes names the folder lacks, in one fenced
transaction, snapshots the result (reason `import`), and releases the lease. Registered creds
are replaced by creds of another identity or by unregistered ones only with `replace=True`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import msgspec
import psycopg
from psycopg_pool import ConnectionPool

from bridge.cluster.leases import Lease, list_leases
from bridge.cluster.operator import operator_hold
from bridge.cluster.snapshots import PgSnapshots
from bridge.errors import CredsCorruptError, ErrorCode, SnapshotError, StoreError
from bridge.store import durable
from bridge.store.creds import is_registered, parse_json_text, validate_creds_text
from bridge.store.identity import identity_of
from bridge.store.layout import CREDS_FILE, is_bridge_private, parse_key_file_name, validate_session_id

log = logging.getLogger(__name__)


class ExportReport(msgspec.Struct):
    """What an export wrote: where, how many files and bytes, and who owned the tenant then."""

    session: str
    folder: str
    files: int
    bytes: int
    registered: bool
    owner: str | None
    owner_live: bool


class ImportReport(msgspec.Struct):
    """What an import loaded, the evidence snapshot of what it replaced, and the snapshot after."""

    session: str
    folder: str
    files: int
    keys: int
    trashed: int
    epoch: int
    pre_import_snapshot: str | None
    snapshot: str
    skipped: list[str] = []


def _read_tenant(pool: ConnectionPool, session_id: str) -> tuple[dict[str, bytes], Lease | None]:
    with pool.connection() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT name, data FROM bridge_auth_files WHERE session_id = %s ORDER BY name", (session_id,)
                ).fetchall()
                lease = next((x for x in list_leases(conn) if x.session_id == session_id), None)
        finally:
            conn.isolation_level = None
    return {str(n): bytes(d) for n, d in rows if not is_bridge_private(str(n))}, lease


def export_tenant(pool: ConnectionPool, session_id: str, target: Path) -> ExportReport:
    """Write the tenant's auth state as a legacy folder at `target` (absent or empty). See module docstring."""
    session_id = validate_session_id(session_id)
    target = Path(target)
    contents, lease = _read_tenant(pool, session_id)
    if CREDS_FILE not in contents:
        raise StoreError(
            f"session {session_id} has no creds.json in the cluster database; nothing to export",
            code=ErrorCode.SESSION_NOT_FOUND,
        )
    with durable.store_errors(target, "exporting into"):
        if target.is_symlink() or (target.exists() and (not target.is_dir() or any(target.iterdir()))):
            raise StoreError(
                f"{target} exists and is not an empty folder; export into a new folder (nothing was written)",
                code=ErrorCode.CONFLICT,
            )
        parent = target.parent
        durable.make_dirs(parent)
        staging = parent / f".{target.name}.bridge-export-{secrets.token_hex(4)}"
        durable.make_dirs(staging)
    try:
        durable.atomic_write_many(staging, contents)
        with durable.store_errors(staging, "checking"):
            written = {p.name: p.read_bytes() for p in staging.iterdir()}
        if written != contents:
            raise StoreError(f"the exported files in {staging} do not match the database; disk trouble?")
        durable.rename(staging, target)
    except BaseException:
        durable.remove_tree(staging)
        raise
    log.info("exported session %s to %s (%d files)", session_id, target, len(contents))
    return ExportReport(
        session=session_id,
        folder=str(target),
        files=len(contents),
        bytes=sum(len(d) for d in contents.values()),
        registered=_registered(contents[CREDS_FILE]),
        owner=None if lease is None else lease.node_id,
        owner_live=bool(lease and lease.live),
    )


def read_legacy_folder(source: Path) -> tuple[dict[str, bytes], list[str]]:
    """creds.json and every key file of a legacy folder, validated; plus the names skipped.

    Raises CredsCorruptError (creds.json missing or invalid) or StoreError naming the first key
    file that is not JSON: an import of a damaged folder writes nothing.
    """
    source = Path(source)
    contents: dict[str, bytes] = {}
    skipped: list[str] = []
    with durable.store_errors(source, "reading for an import"):
        if not source.is_dir():
            raise StoreError(f"{source} is not a folder", code=ErrorCode.SESSION_FOLDER_MISSING)
        for path in sorted(source.iterdir()):
            name = path.name
            if is_bridge_private(name) or not path.is_file() or path.is_symlink():
                skipped.append(name)
                continue
            if name != CREDS_FILE and parse_key_file_name(name) is None:
                skipped.append(name)
                continue
            contents[name] = path.read_bytes()
    if CREDS_FILE not in contents:
        raise CredsCorruptError(f"{source} has no creds.json; it is not a useMultiFileAuthState folder")
    try:
        validate_creds_text(contents[CREDS_FILE].decode("utf-8"), source=str(source / CREDS_FILE))
    except UnicodeDecodeError as exc:
        raise CredsCorruptError(f"{source / CREDS_FILE} is not UTF-8 text") from exc
    for name, data in contents.items():
        try:
            parse_json_text(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(
                f"{source / name} is not valid JSON ({exc}); fix or remove it, nothing was imported"
            ) from exc
    return contents, skipped


def import_tenant(pool: ConnectionPool, session_id: str, source: Path, *, replace: bool = False) -> ImportReport:
    """Load a legacy folder as the tenant's auth state (see module docstring)."""
    session_id = validate_session_id(session_id)
    contents, skipped = read_legacy_folder(source)
    snaps = PgSnapshots(pool)
    with operator_hold(pool, session_id, "import") as backend:
        present = backend.list_names()
        current = backend.read([CREDS_FILE])[CREDS_FILE]
        if current is not None and not replace:
            _refuse_downgrade(session_id, current, contents[CREDS_FILE])
        pre_id = snaps.create(session_id, reason="pre-import").id if present else None
        trash = [name for name in present if name not in contents]
        backend.commit(contents, trash)
        after = snaps.create(session_id, reason="import")
        epoch = backend.epoch
    log.info("imported %s into session %s (%d files, epoch %d)", source, session_id, len(contents), epoch)
    return ImportReport(
        session=session_id,
        folder=str(source),
        files=len(contents),
        keys=len(contents) - 1,
        trashed=len(trash),
        epoch=epoch,
        pre_import_snapshot=pre_id,
        snapshot=after.id,
        skipped=skipped,
    )


def _refuse_downgrade(session_id: str, current: bytes, new: bytes) -> None:
    """Registered creds are only replaced by the same identity's unless the operator says `replace`."""
    try:
        old = validate_creds_text(current.decode("utf-8"))
    except (CredsCorruptError, UnicodeDecodeError):
        return
    if not is_registered(old):
        return
    incoming = validate_creds_text(new.decode("utf-8"))
    if not is_registered(incoming) or not identity_of(old).same_account(identity_of(incoming)):
        raise SnapshotError(
            f"session {session_id} holds linked creds in the cluster and the folder holds "
            f"{'unlinked creds' if not is_registered(incoming) else 'another account'}; nothing was written. "
            "Pass --replace to import anyway (the current state is snapshotted first).",
            code=ErrorCode.IDENTITY_MISMATCH,
        )


def _registered(data: bytes) -> bool:
    try:
        return is_registered(validate_creds_text(data.decode("utf-8")))
    except (CredsCorruptError, UnicodeDecodeError):
        return False
