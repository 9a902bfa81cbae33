"""`python -m bridge sessions`: list sessions from the registry and what is on disk, read-only.

For each session: the last state the bridge recorded (and why), whether it should run after a
restart, how it logs in, the linked account (`me` from creds.json), how many files its folder
holds, its newest snapshot, and the pid that last held its lock (a running bridge). Folders under
the auth root with a creds.json that the registry does not know are listed as `unregistered`
(the next bridge start registers them).

It never writes anything and never takes a session's lock (taking it, even for a moment, could
make a starting bridge refuse that session). Exit codes: 0 listed, 5 the registry or a folder
could not be read (the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

from bridge.config import Settings
from bridge.errors import BridgeError
from bridge.sessions.registry import Registry, SessionRecord
from bridge.store.creds import is_registered
from bridge.store.folders import session_folders
from bridge.store.layout import CREDS_FILE, BridgeDirs
from bridge.store.lock import read_holder
from bridge.store.snapshots import Snapshots

EXIT_OK = 0
EXIT_ERROR = 5


class SessionRow(msgspec.Struct):
    """One line of the listing (also the `--json` shape)."""

    id: str
    state: str
    reason: str
    desired_running: bool
    archived: bool
    registered_in_bridge: bool
    login: str | None
    phone: str | None
    me: str | None
    folder: str
    folder_exists: bool
    files: int
    last_snapshot: str | None
    last_snapshot_reason: str | None
    last_snapshot_at: float | None
    lock_holder: int | None
    lock_holder_alive: bool


def register(subparsers: Any) -> None:
    """Add the `sessions` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sessions", help="list sessions (registry + on-disk state)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, help="auth root (default: BRIDGE_AUTH_ROOT)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--all", action="store_true", help="include archived sessions")
    parser.set_defaults(func=run)


def _me(folder: Path) -> str | None:
    """The linked device's JID; None when unreadable or not linked (a pairing-code request sets
    `me` before anything is linked: that is no account yet)."""
    try:
        data = json.loads((folder / CREDS_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not is_registered(data):
        return None
    return str(data["me"]["id"])


def _row(root: Path, snapshots: Snapshots, record: SessionRecord, known: bool) -> SessionRow:
    folder = Path(record.folder) if record.folder else root / record.id
    exists = folder.is_dir()
    files = sum(1 for p in folder.iterdir() if p.is_file()) if exists else 0
    latest = snapshots.latest(record.id)
    holder = read_holder(BridgeDirs.of_auth_root(root).session_lock(record.id))
    return SessionRow(
        id=record.id,
        state=record.last_state if known else "unregistered",
        reason=record.last_reason,
        desired_running=record.desired_running,
        archived=record.archived,
        registered_in_bridge=known,
        login=record.login if known else None,
        phone=record.phone,
        me=_me(folder) if exists else None,
        folder=str(folder),
        folder_exists=exists,
        files=files,
        last_snapshot=latest.id if latest else None,
        last_snapshot_reason=latest.reason if latest else None,
        last_snapshot_at=latest.created_at if latest else None,
        lock_holder=holder,
        lock_holder_alive=holder is not None and psutil.pid_exists(holder),
    )


def collect(root: Path, *, include_archived: bool = False) -> list[SessionRow]:
    """Every session the registry knows plus unregistered auth folders, sorted by id."""
    registry = Registry(BridgeDirs.of_auth_root(root).root)
    if registry.unavailable is not None:
        raise registry.unavailable
    snapshots = Snapshots(root)
    records = {r.id: r for r in registry.all(include_archived=include_archived)}
    rows = [_row(root, snapshots, r, True) for r in records.values()]
    archived = {r.id for r in registry.all() if r.archived}
    extra = [
        SessionRecord(id=f.session, folder=str(f.path) if f.adopted else None)
        for f in session_folders(root).values()
        if f.session not in records and f.session not in archived
    ]
    rows += [_row(root, snapshots, r, False) for r in extra]
    return sorted(rows, key=lambda r: r.id)


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _table(rows: list[SessionRow]) -> str:
    header = ("SESSION", "STATE", "RUN", "LOGIN", "ACCOUNT", "FILES", "LAST SNAPSHOT", "LOCK")
    lines = [header]
    for r in rows:
        lock = f"pid {r.lock_holder}" if r.lock_holder_alive else "-"
        snap = f"{r.last_snapshot_reason} {_age(r.last_snapshot_at)}" if r.last_snapshot else "none"
        state = r.state + (" (archived)" if r.archived else "") + ("" if r.folder_exists else " (folder missing)")
        lines.append((r.id, state, "yes" if r.desired_running else "no", r.login or "-", r.me or "-",
                      str(r.files), snap, lock))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else Settings().auth_root
    try:
        rows = collect(root, include_archived=args.all)
    except (BridgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        sys.stdout.write(msgspec.json.encode({"root": str(root), "sessions": rows}).decode() + "\n")
    elif rows:
        print(_table(rows))
    else:
        print(f"no sessions under {root}")
    return EXIT_OK
