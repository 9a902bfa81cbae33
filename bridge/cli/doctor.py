"""`python -m bridge doctor`: check this machine and configuration before (or while) running the bridge.

Checks Node and its permission model (by running it), the installed Baileys against the pin, the
auth root and state folder (a real write/fsync/rename probe, and the file system type), free space
and inodes, snapshot freshness, API keys for a non-loopback bind, Telegram (when configured) and
the clock (against the WhatsApp host's HTTP Date). Each finding says what to fix.

It reads the same settings as `python -m bridge run` (BRIDGE_* and .env) and is safe beside a
running bridge. Exit codes: 0 everything fine (skipped checks included), 1 at least one warning,
2 at least one error (argparse also exits 2 on bad usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from bridge.config import Settings
from bridge.doctor import CHECKS, CheckResult, Status, exit_code, run_checks, worst

_MARK = {Status.OK: "ok", Status.SKIPPED: "skip", Status.WARNING: "WARN", Status.ERROR: "FAIL"}


def register(subparsers: Any) -> None:
    """Add the `doctor` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor", help="check Node, Baileys, storage, disk, snapshots, API keys, Telegram and the clock",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--auth-root", type=Path, help="auth root to check (BRIDGE_AUTH_ROOT)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network call or Node run (5)")
    parser.add_argument("--check", action="append", choices=[name for name, _ in CHECKS],
                        help="run only this check (repeatable)")
    parser.set_defaults(func=run)


def render(results: list[CheckResult]) -> str:
    """The human report: one line per check, the fix indented under each problem, a verdict."""
    width = max(len(r.check) for r in results)
    lines: list[str] = []
    for r in results:
        lines.append(f"[{_MARK[r.status]:>4}] {r.check:<{width}}  {r.summary}")
        if r.fix:
            lines.append(f"       {'':<{width}}  fix: {r.fix}")
    verdict = worst(results)
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    tally = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    lines.append(f"{verdict.value.upper()}: {tally} (exit code {exit_code(results)})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the checks and print them; the exit code is the worst severity (0, 1 or 2)."""
    overrides: dict[str, Any] = {}
    if args.auth_root is not None:
        overrides["auth_root"] = args.auth_root
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    results = run_checks(settings, timeout=args.timeout, only=set(args.check) if args.check else None)
    code = exit_code(results)
    if args.json:
        document = {"status": worst(results), "exit_code": code, "checks": results}
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
    else:
        print(render(results))
    return code
