"""Operator commands of cluster mode (docs/cluster.md): `export`, `import`, and `cluster status`,
`cluster snapshot`, `cluster snapshots`, `cluster verify`, `cluster restore`.

They talk to the cluster database (`--dsn`, default BRIDGE_CLUSTER_DSN), print for humans or one
JSON document with `--json`, and exit with the codes of docs/operations.md (0 ok, 2 usage,
3 refused for safety, 4 not found, 5 other errors such as an unreachable database).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bridge.cli.output import Result, answer
from bridge.cluster.db import open_pool
from bridge.cluster.export import export_tenant, import_tenant
from bridge.cluster.leases import database_now, list_leases
from bridge.cluster.operator import operator_hold
from bridge.cluster.schema import ensure_schema, schema_versions
from bridge.cluster.snapshots import PgSnapshots
from bridge.config import Settings
from bridge.errors import ConfigError, ExitCode

Handler = Callable[[argparse.Namespace, ConnectionPool], Result]


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

    cluster = subparsers.add_parser("cluster", help="cluster mode: status of nodes and leases")
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
