"""Snapshot freshness: every live session folder has a recent snapshot, a linked one a linked snapshot.

Snapshots are what a restore (by the monitor or by hand) brings back. A session whose newest
snapshot is older than twice BRIDGE_SNAPSHOT_INTERVAL (the monitor's `snapshot_stale` line) would
come back with old Signal keys; a linked session without any linked snapshot would come back
needing a new QR scan. Archived sessions are left out. This only reads manifests; it does not
re-hash objects (that is `python -m bridge verify`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bridge.config import Settings
from bridge.doctor.result import CheckResult, error, ok, skipped, warning
from bridge.errors import BridgeError
from bridge.sessions.registry import Registry
from bridge.store.creds import is_registered
from bridge.store.layout import CREDS_FILE
from bridge.store.snapshots import Snapshots

NAME = "snapshots"


def _linked(folder: Path) -> bool:
    try:
        creds = json.loads((folder / CREDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(creds, dict) and is_registered(creds)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def check(settings: Settings, timeout: float) -> CheckResult:
    """See the module docstring."""
    del timeout
    root = Path(settings.auth_root)
    if not root.is_dir():
        return skipped(NAME, f"no auth root at {root} yet, so no sessions")
    try:
        snaps = Snapshots(root)
        archived = {r.id for r in Registry(settings.bridge_dir).all() if r.archived}
        live = {sid: snaps.session_folder(sid) for sid in snaps.live_sessions() if sid not in archived}
    except BridgeError as exc:
        return error(NAME, f"cannot list sessions under {root}: {exc}", "fix the auth root first (see auth_root)")
    if not live:
        return ok(NAME, f"no session folders under {root}")
    limit = 2 * settings.snapshot_interval
    now = time.time()
    problems: list[str] = []
    ages: dict[str, float | None] = {}
    for sid, folder in live.items():
        latest = snaps.latest(sid)
        ages[sid] = None if latest is None else now - latest.created_at
        if latest is None:
            problems.append(f"{sid}: no snapshot")
        elif now - latest.created_at > limit:
            problems.append(f"{sid}: newest snapshot is {_age(now - latest.created_at)} old (limit {_age(limit)})")
        elif _linked(folder) and snaps.latest(sid, registered=True) is None:
            problems.append(f"{sid}: linked, but no snapshot holds linked creds")
    details = {"sessions": ages, "limit_seconds": limit}
    if problems:
        return warning(
            NAME,
            "; ".join(problems),
            "take one now with `python -m bridge snapshot <session>`, and keep the monitor on "
            "(BRIDGE_MONITOR_ENABLED=true) so snapshots follow every link and BRIDGE_SNAPSHOT_INTERVAL",
            **details,
        )
    oldest = max(a for a in ages.values() if a is not None)
    return ok(NAME, f"{len(live)} session(s), each snapshotted within the last {_age(oldest)}", **details)
