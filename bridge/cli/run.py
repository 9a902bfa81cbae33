"""`python -m bridge run` (also what `python -m bridge` does with no arguments): run the service.

Options override the matching BRIDGE_* settings for this run; everything else comes from the
environment and `.env`, with defaults that work on a fresh machine (auth under ./data/auth, API on
127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge import logs
from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError, exit_code

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the `run` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the bridge service (default)", description=__doc__
    )
    parser.add_argument("--host", help="bind address (BRIDGE_HOST)")
    parser.add_argument("--port", type=int, help="port (BRIDGE_PORT)")
    parser.add_argument("--auth-root", type=Path, help="folder of the auth folders (BRIDGE_AUTH_ROOT)")
    parser.add_argument("--sandbox", action="store_true", default=None,
                        help="run beside the bundled WhatsApp simulator, data under ./data/sandbox (BRIDGE_SANDBOX; "
                        "docs/sandbox.md)")
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from env/.env, with command-line options taking precedence."""
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "auth_root", "sandbox"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """How the service's event loop is made (`BRIDGE_EVENT_LOOP`): uvloop's, or None for asyncio's own.

    Why uvloop by default: with sessions sending, the bridge's Python process spends a large share of
    its CPU in the event loop's own machinery (about 20 loop turns and a dozen thread wake-ups per
    sent message); uvloop does that work in C (docs/performance.md, "Messages throughput")."""
    if settings.event_loop != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("BRIDGE_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop); running on "
                    "asyncio's event loop")
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean shutdown, 2 when the configuration is refused, 3
    when another bridge runs on the same auth root, 5 for other errors the operator must fix."""
    from bridge.app import serve
    from bridge.doctor.disk import register_disk_metrics

    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
    register_disk_metrics(settings)
    try:
        factory = loop_factory(settings)
        log.info("event loop: %s", "uvloop" if factory is not None else "asyncio")
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        # A refusal the operator must act on (another bridge holds the root: exit 3; a damaged
        # registry: exit 5): one line, no traceback. Storage faults do not end up here: the
        # service stays up and reports them.
        print(f"error: {exc}", file=sys.stderr)
        return int(exit_code(exc))
    return 0
