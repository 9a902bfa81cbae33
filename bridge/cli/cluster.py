"""Operator commands of cluster mode (docs/cluster.md): `export`, `import`, and `cluster status`,
`cluster snapshot`, `cluster snapshots`, `cluster verify`, `cluster restore`, `cluster creds-history`,
`cluster restore-creds`, `cluster prune`.

They talk to the cluster database (`--dsn`, default BRIDGE_CLUSTER_DSN), print for humans or one
JSON document with `--json`, and exit with the codes of docs/operations.md (0 ok, 2 usage,
3 refused for safety, 4 not found, 5 other errors such as an unreachable database).
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bridge.cli.output import Result, answer
from bridge.cluster.creds_history import HistoryEntry, PgCredsHistory
from bridge.cluster.db import open_pool
from bridge.cluster.export import export_tenant, import_tenant
from bridge.cluster.leases import database_now, list_leases
from bridge.cluster.operator import operator_hold
from bridge.cluster.retention import RetentionPolicy, RetentionReport, prune
from bridge.cluster.schema import ensure_schema, schema_versions
from bridge.cluster.snapshots import PgSnapshots
from bridge.config import Settings
from bridge.errors import ConfigError, CredsCorruptError, ErrorCode, ExitCode, StoreError
from bridge.store.layout import CREDS_FILE, validate_session_id
from bridge.store.snapshots.objects import sha256_hex
from bridge.store.snapshots.prune import KeepPolicy

Handler = Callable[[argparse.Namespace, ConnectionPool], Result]

#: How many hex digits of a creds text's sha256 a listing shows (and names an entry by).
SHORT_SHA = 12
_HEX = re.compile(r"[0-9a-f]{1,64}")


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Open a pool on --dsn (schema ensured), run the handler, print, map errors to exit codes."""

    def with_pool(args: argparse.Namespace) -> Result:
        dsn = args.dsn or Settings().cluster_dsn
        if not dsn:
            raise ConfigError("cluster mode is off: set BRIDGE_CLUSTER_DSN or pass --dsn postgresql://...")
        pool = open_pool(dsn, max_size=2, name="bridge-cli")
        try:
            with pool.connection() as conn:
                ensure_schema(conn)
            return handler(args, pool)
        finally:
            pool.close()

    def func(args: argparse.Namespace) -> int:
        return answer(args, lambda: with_pool(args))

    return func


# ----- handlers -----------------------------------------------------------------------------
def _export(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    report = export_tenant(pool, args.session, Path(args.folder))
    human = f"exported {report.session} to {report.folder}: {report.files} files, {report.bytes} bytes"
    if report.owner_live:
        human += (
            f"\nwarning: node {report.owner} still runs {report.session}; stop it in the cluster before a legacy "
            "process uses this folder (two connections for one device replace each other)"
        )
    return ExitCode.OK, report, human


def _import(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    report = import_tenant(pool, args.session, Path(args.folder), replace=args.replace)
    human = (
        f"imported {report.folder} as {report.session}: {report.files} files ({report.keys} keys), "
        f"{report.trashed} trashed, epoch {report.epoch}, snapshot {report.snapshot}"
    )
    if report.pre_import_snapshot:
        human += f"\nthe state it replaced is kept in snapshot {report.pre_import_snapshot}"
    if report.skipped:
        human += f"\nskipped (not auth files): {', '.join(report.skipped)}"
    return ExitCode.OK, report, human


def _snapshot(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    manifest = PgSnapshots(pool).create(args.session, reason=args.reason)
    human = (
        f"snapshot {manifest.id} of {manifest.session}: {len(manifest.files)} files, "
        f"{manifest.total_bytes} bytes, registered={manifest.registered}"
    )
    return ExitCode.OK, manifest, human


def _snapshots(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    manifests = PgSnapshots(pool).newest_first(args.session)
    lines = [f"{args.session}: {len(manifests)} snapshot(s)"]
    for m in manifests:
        mark = "registered" if m.registered else "unregistered"
        lines.append(f"  {m.id}  {m.created_iso}  {m.reason:<16} {mark:<12} {len(m.files)} files")
    return ExitCode.OK, {"session": args.session, "snapshots": manifests}, "\n".join(lines)


def _verify(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    report = PgSnapshots(pool).verify(session_id=args.session)
    lines = [
        f"checked {report.snapshots_checked} snapshot(s), {report.objects_checked} object(s), "
        f"{report.bytes_checked} bytes: {'ok' if report.ok else f'{len(report.problems)} problem(s)'}"
    ]
    for problem in report.problems:
        lines.append(f"  {problem.kind}: {problem.path} ({problem.detail}) used by {', '.join(problem.snapshots)}")
    return (ExitCode.OK if report.ok else ExitCode.CHECK_FAILED), report, "\n".join(lines)


def _restore(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    with operator_hold(pool, args.session, "restore") as backend:
        outcome = PgSnapshots(pool).restore(backend, args.snapshot)
    human = (
        f"restored snapshot {outcome.restored.id} of {args.session}: {outcome.keys_after} key(s) "
        f"(were {outcome.keys_before}); the replaced state is kept in snapshot {outcome.pre_restore_snapshot}"
    )
    return ExitCode.OK, outcome, human


def _is_tenant(pool: ConnectionPool, session_id: str) -> bool:
    with pool.connection() as conn:
        return any(x.session_id == session_id for x in list_leases(conn))


def _entries(pool: ConnectionPool, session_id: str) -> list[HistoryEntry]:
    """The tenant's creds history; `session_not_found` when the cluster knows nothing of the session."""
    entries = PgCredsHistory(pool).entries(validate_session_id(session_id))
    if not entries and not _is_tenant(pool, session_id):
        raise StoreError(
            f"session {session_id} is not a tenant of this cluster and has no creds history; "
            "`python -m bridge cluster status` lists the tenants",
            code=ErrorCode.SESSION_NOT_FOUND,
        )
    return entries


def _shown(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry as listings show it: `HistoryEntry.describe` (never the creds) plus its time and short sha."""
    return {
        **entry.describe(),
        "short": entry.sha256[:SHORT_SHA],
        "seq": entry.seq,
        "kept_iso": datetime.fromtimestamp(entry.kept_at, UTC).isoformat(timespec="seconds"),
    }


def _creds_state(shown: dict[str, Any]) -> str:
    return "linked" if shown["registered"] else ("unlinked" if shown["valid"] else "INVALID")


def _creds_history(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    shown = [_shown(e) for e in _entries(pool, args.session)]
    lines = [f"{args.session}: {len(shown)} creds history entr{'y' if len(shown) == 1 else 'ies'}, newest first"]
    if shown:
        lines.append(f"  {'SHA256':<{SHORT_SHA}}  {'KEPT (UTC)':<25} {'NODE':<24} {'EPOCH':>5}  {'CREDS':<8} ACCOUNT")
    for x in shown:
        lines.append(
            f"  {x['short']}  {x['kept_iso']:<25} {x['node']:<24} {x['epoch']:>5}  {_creds_state(x):<8} "
            f"{x['account'] or '-'}"
        )
    if shown:
        lines.append(f"put one back with: python -m bridge cluster restore-creds {args.session} <sha256 prefix>")
    return ExitCode.OK, {"session": args.session, "entries": shown}, "\n".join(lines)


def _chosen(pool: ConnectionPool, session_id: str, prefix: str) -> HistoryEntry:
    """The one history entry `prefix` names, valid creds; refused (nothing written) otherwise."""
    prefix = prefix.lower()
    if not _HEX.fullmatch(prefix):
        raise StoreError(
            f"{prefix!r} is not a sha256 prefix (hex digits); `python -m bridge cluster creds-history {session_id}` "
            "lists them",
            code=ErrorCode.BAD_REQUEST,
        )
    entries = _entries(pool, session_id)
    matches = [e for e in entries if e.sha256.startswith(prefix)]
    if not matches:
        raise StoreError(
            f"no entry of the creds history of session {session_id} has a sha256 starting with {prefix} "
            f"({len(entries)} entries; `python -m bridge cluster creds-history {session_id}` lists them)",
            code=ErrorCode.NOT_FOUND,
        )
    if len(matches) > 1:
        raise StoreError(
            f"{prefix} matches {len(matches)} entries of the creds history of session {session_id} "
            f"({', '.join(e.sha256[:SHORT_SHA] for e in matches)}); give more digits",
            code=ErrorCode.BAD_REQUEST,
        )
    if matches[0].creds() is None:
        raise CredsCorruptError(
            f"{matches[0].ref} does not hold valid creds; refusing to restore it (nothing was written)"
        )
    return matches[0]


def _restore_creds(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    chosen = _chosen(pool, args.session, args.sha)
    with operator_hold(pool, args.session, "restore-creds") as backend:
        before = backend.read([CREDS_FILE])[CREDS_FILE]
        restored = PgCredsHistory(pool).restore(backend, chosen.sha256)
    shown = _shown(restored)
    replaced = None if before is None else sha256_hex(before)
    data = {"session": args.session, "restored": shown, "replaced_sha256": replaced}
    lines = [
        f"restored creds {shown['short']} of {args.session} ({_creds_state(shown)}, "
        f"{shown['account'] or 'no account'}; kept {shown['kept_iso']} by {shown['node']}, "
        f"epoch {shown['epoch']}) as {CREDS_FILE}; keys untouched",
        (
            "there were no creds before"
            if replaced is None
            else "they were the current creds already: nothing changed"
            if replaced == restored.sha256
            else f"the creds it replaced ({replaced[:SHORT_SHA]}) stay in the creds history"
        ),
        "start the session again to use them",
    ]
    if not shown["registered"]:
        lines.append("warning: these creds are not linked: the session will need a new QR or pairing code")
    return ExitCode.OK, data, "\n".join(lines)


def _prune(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    keep = KeepPolicy(last=args.keep_last, daily=args.keep_daily, weekly=args.keep_weekly)
    days = args.trash_max_age_days if args.trash_max_age_days is not None else Settings().trash_max_age_days
    if not keep.keeps_anything() or min(keep.last, keep.daily, keep.weekly) < 0 or days < 0:
        raise StoreError(
            "the keep-policy must keep at least one snapshot and use no negative count or age",
            code=ErrorCode.BAD_POLICY,
        )
    report = prune(pool, RetentionPolicy(snapshots=keep, trash_max_age_days=days), dry_run=args.dry_run)
    if not report.ran:
        return (
            ExitCode.REFUSED,
            report,
            "another node is pruning (it holds the retention lock); nothing was done, try again later",
        )
    return ExitCode.OK, report, _pruned(report, days)


def _pruned(report: RetentionReport, days: float) -> str:
    verb = "would remove" if report.dry_run else "removed"
    lines = [
        f"{verb} {len(report.snapshots_removed)} snapshot(s); {report.snapshots_kept} kept, "
        f"{len(report.protected)} of them only because protected (newest or registered creds)"
    ]
    lines += [f"  {name}" for name in report.snapshots_removed]
    if report.dry_run:
        if report.snapshots_removed:
            lines.append("objects no kept snapshot references are counted only by a real pass")
    else:
        lines.append(f"removed {report.objects_removed} unreferenced object(s), {report.object_bytes_freed} bytes")
    if report.objects_skipped:
        lines.append(f"no object removed: {report.objects_skipped}")
    lines.append(
        f"{verb} {report.trash_removed} trashed key(s) older than {days:g} days, {report.trash_bytes_freed} bytes"
    )
    return "\n".join(lines)


def _nodes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]] | None:
    """The `cluster_nodes` rows (bridge/cluster/nodes.py), None where this bridge or database has none."""
    try:
        nodes = importlib.import_module("bridge.cluster.nodes")
    except ModuleNotFoundError:
        return None
    try:
        found = nodes.all_nodes(conn)
    except psycopg.errors.UndefinedTable:
        return None
    return [{"node_id": n.node_id, "url": n.url, "alive": n.alive, "expires_in": round(n.expires_in, 1)} for n in found]


def _status(args: argparse.Namespace, pool: ConnectionPool) -> tuple[int, Any, str]:
    with pool.connection() as conn:
        leases = list_leases(conn)
        now = database_now(conn)
        versions = schema_versions(conn)
        nodes = _nodes(conn)
    per_node: dict[str, list[str]] = {}
    for lease in leases:
        key = lease.node_id if lease.live and lease.node_id else "(unowned)"
        per_node.setdefault(key, []).append(lease.session_id)
    data = {
        "database_now": now.isoformat(),
        "schema": versions,
        "nodes": nodes,
        "tenants_per_node": {k: len(v) for k, v in sorted(per_node.items())},
        "leases": [
            {
                "session": x.session_id,
                "node": x.node_id,
                "epoch": x.epoch,
                "live": x.live,
                "expires_in": _seconds(x.expires_at, now),
            }
            for x in leases
        ],
    }
    lines = [f"database clock {now.isoformat(timespec='seconds')}; schema {versions}"]
    if nodes is None:
        lines.append("nodes: (no node table yet)")
    else:
        lines.append(f"nodes: {len(nodes)}")
        for node in nodes:
            state = "alive" if node["alive"] else "dead"
            lines.append(
                f"  {node['node_id']:<24} {state:<6} {node['url']}  heartbeat expires in {node['expires_in']} s"
            )
    lines.append(f"tenants: {len(leases)}")
    for owner, sessions in sorted(per_node.items()):
        lines.append(f"  {owner:<24} {len(sessions)} tenant(s)")
    lines.append(f"  {'SESSION':<24} {'NODE':<24} {'EPOCH':>6}  LEASE")
    for x in leases:
        left = _seconds(x.expires_at, now)
        held = (
            "unowned" if x.node_id is None else (f"live, {left} s left" if x.live else f"expired {-(left or 0)} s ago")
        )
        lines.append(f"  {x.session_id:<24} {x.node_id or '-':<24} {x.epoch:>6}  {held}")
    return ExitCode.OK, data, "\n".join(lines)


def _seconds(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else round((when - now).total_seconds(), 1)


# ----- parsers ------------------------------------------------------------------------------
def _add(sub: Any, name: str, handler: Handler, help_text: str, description: str) -> argparse.ArgumentParser:
    epilog = "exit codes: 0 ok, 2 usage, 3 refused for safety, 4 not found, 5 error (e.g. database unreachable)"
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=description, epilog=epilog)
    parser.add_argument("--dsn", help="cluster database (default: BRIDGE_CLUSTER_DSN)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.set_defaults(func=_run(handler))
    return parser


def register(subparsers: Any) -> None:
    """Add `export`, `import` and `cluster` with its actions."""
    p = _add(
        subparsers,
        "export",
        _export,
        "write a cluster tenant's auth state as a useMultiFileAuthState folder",
        "Write the tenant's creds.json and key files, byte for byte as the cluster holds them, into a new "
        "folder a legacy Baileys process can use (rollback to a legacy setup). Stop the tenant in the cluster "
        "before a legacy process uses the folder.",
    )
    p.add_argument("session", help="session id (tenant)")
    p.add_argument("folder", help="target folder: must not exist or be empty")

    p = _add(
        subparsers,
        "import",
        _import,
        "load a useMultiFileAuthState folder into the cluster as a tenant",
        "Validate the folder, take the tenant's lease (refused while a node runs it), keep a snapshot of what "
        "the cluster held for it, write the folder's files in one transaction, snapshot the result and "
        "release the lease. Stop any legacy process using the folder first.",
    )
    p.add_argument("session", help="session id (tenant)")
    p.add_argument("folder", help="the legacy auth folder (holding creds.json)")
    p.add_argument("--replace", action="store_true", help="replace linked creds by another account's or unlinked ones")

    cluster = subparsers.add_parser(
        "cluster", help="cluster mode: status, snapshots, creds history and retention in the database"
    )
    actions = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    _add(
        actions,
        "status",
        _status,
        "nodes, leases, epochs and tenants per node",
        "Print every node (heartbeat by the database clock), every tenant's lease with its epoch, and how "
        "many tenants each node runs.",
    )
    p = _add(
        actions,
        "snapshot",
        _snapshot,
        "snapshot a tenant's auth state in the database now",
        "Store every file of the tenant as content-addressed objects and an immutable manifest, read in one "
        "consistent transaction. Safe while a node runs the tenant.",
    )
    p.add_argument("session", help="session id (tenant)")
    p.add_argument("--reason", default="manual", help="recorded in the manifest (default: manual)")
    p = _add(actions, "snapshots", _snapshots, "list a tenant's snapshots", "List snapshots newest first.")
    p.add_argument("session", help="session id (tenant)")
    p = _add(
        actions,
        "verify",
        _verify,
        "re-hash every snapshot object",
        "Re-hash every object the snapshots (of one tenant, or all) reference; name each missing or corrupt one. "
        "Exit code 1 when any is.",
    )
    p.add_argument("session", nargs="?", help="only this tenant's snapshots")
    p = _add(
        actions,
        "restore",
        _restore,
        "put a snapshot back as a tenant's auth state",
        "Take the tenant's lease (refused while a node runs it), check every object, snapshot the current state "
        "(pre-restore), write the snapshot's files in one transaction (names it lacks go to the trash table), "
        "release the lease.",
    )
    p.add_argument("session", help="session id (tenant)")
    p.add_argument("snapshot", help="snapshot id (a unique prefix is enough)")

    p = _add(
        actions,
        "creds-history",
        _creds_history,
        "list a tenant's creds history (never the creds)",
        "List the creds texts the cluster kept for the tenant, newest first: when, by which node and epoch, "
        "whether valid and linked, which account, and the sha256 that names the entry for restore-creds. "
        "Never prints the creds themselves.",
    )
    p.add_argument("session", help="session id (tenant)")
    p = _add(
        actions,
        "restore-creds",
        _restore_creds,
        "put a creds history entry back as creds.json",
        "Take the tenant's lease (refused while a node runs it), write the entry as creds.json through the "
        "fenced backend (keys untouched), release the lease. The creds it replaces stay in the history. "
        "Refused, nothing written, for an unknown or ambiguous prefix or an entry that is not valid creds.",
    )
    p.add_argument("session", help="session id (tenant)")
    p.add_argument("sha", metavar="sha256-prefix", help="the entry's sha256 (a unique prefix is enough)")
    defaults = KeepPolicy()
    p = _add(
        actions,
        "prune",
        _prune,
        "apply retention to snapshots and trash now",
        "Run one retention pass now, as every node does hourly and with the same defaults: remove the snapshots "
        "the keep-policy does not keep (never a tenant's newest, never one with registered creds), the objects "
        "no kept snapshot references, and trashed keys older than the age (never creds). Exit code 3 when "
        "another node is pruning (nothing done).",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    p.add_argument("--keep-last", type=int, default=defaults.last, help=f"keep the newest N (default {defaults.last})")
    p.add_argument(
        "--keep-daily", type=int, default=defaults.daily, help=f"keep one per day for D days (default {defaults.daily})"
    )
    p.add_argument(
        "--keep-weekly",
        type=int,
        default=defaults.weekly,
        help=f"keep one per ISO week for W weeks (default {defaults.weekly})",
    )
    p.add_argument(
        "--trash-max-age-days",
        type=float,
        help="remove trashed keys older than X days (default BRIDGE_TRASH_MAX_AGE_DAYS, 30)",
    )
