"""`python -m bridge monitor --root <auth-root>`: the safe monitor alone, beside a legacy setup.

The first step of a migration: the legacy Node process keeps running and keeps writing its own
auth folders with useMultiFileAuthState; this only reads them, snapshots them as they change and
on a schedule, and if a folder is deleted or its creds truncated/replaced, restores the newest
intact snapshot in place (moving what it replaces under .bridge/replaced/) and alerts (log, and
Telegram when BRIDGE_TELEGRAM_TOKEN and BRIDGE_TELEGRAM_CHAT_ID are set). It never deletes.

`--once` checks and snapshots every folder a single time and exits (for cron); exit code 0 when
everything is healthy, 1 when an incident was found (restored or not), 2 on bad arguments, 3
when another bridge or monitor already runs on this root, 5 when the root cannot be locked at all
(read-only, permissions; the message says which).

It holds the root lock (`.bridge/locks/bridge.lock`) for its whole life, like `python -m bridge`
does: two monitors on one root would repair the same folder twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bridge import logs
from bridge.config import Settings
from bridge.errors import BridgeError, exit_code
from bridge.events import EventBus
from bridge.store.lock import RootLock
from bridge.tasks import cancel_and_wait


def register(subparsers: Any) -> None:
    """Add the `monitor` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "monitor",
        help="run only the safe monitor over an auth root (standalone, beside a legacy Node setup)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, help="auth root holding one folder per session (BRIDGE_AUTH_ROOT)")
    parser.add_argument("--scan-interval", type=float, help="seconds between full scans (BRIDGE_MONITOR_SCAN_INTERVAL)")
    parser.add_argument("--once", action="store_true", help="check and snapshot once, print incidents as JSON, exit")
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.root is not None:
        overrides["auth_root"] = args.root
    if args.scan_interval is not None:
        overrides["monitor_scan_interval"] = args.scan_interval
    return Settings(**overrides)


async def _once(settings: Settings) -> int:
    from bridge.monitor.alerts import Alert, Alerter
    from bridge.monitor.watcher import AuthWatcher
    from bridge.store.snapshots import Snapshots

    bus = EventBus()
    alerter = Alerter.from_settings(settings)
    alerter.start()
    watcher = AuthWatcher(settings, bus, Snapshots(settings.auth_root))
    incidents = await watcher.scan()
    await watcher.snapshot_all("scheduled")
    for event in bus.since(0):
        if event.kind == "alert":
            alerter.submit(Alert.from_event(event))
    await alerter.aclose(drain_timeout=30.0)
    print(json.dumps({"incidents": [i.as_dict() for i in incidents]}, indent=2))
    return 1 if incidents else 0


async def _forever(settings: Settings) -> int:
    from bridge.monitor.runner import run_monitor
    from bridge.store.snapshots import Snapshots

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bus = EventBus(settings.events_buffer)
    task = asyncio.create_task(run_monitor(settings, bus, Snapshots(settings.auth_root)))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    error = task.exception() if task.done() and not task.cancelled() else None
    await cancel_and_wait([task, stopping])
    if error is not None:
        raise error
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the monitor until SIGTERM/SIGINT (or once with --once)."""
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    if not settings.auth_root.is_dir():
        print(f"error: {settings.auth_root} is not a folder; pass the legacy auth root with --root", file=sys.stderr)
        return 2
    lock = RootLock(settings.bridge_dir)
    try:
        lock.acquire()
    except BridgeError as exc:  # RootLockedError (refused, 3) or a storage fault (5)
        print(f"error: {exc}", file=sys.stderr)
        return int(exit_code(exc))
    logs.configure(settings)
    try:
        return asyncio.run(_once(settings) if args.once else _forever(settings))
    finally:
        lock.release()
