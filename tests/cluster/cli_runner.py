"""Operator commands run as real processes (`python -m bridge ...`), the way an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from bridge.config import PROJECT_ROOT


def cli(dsn: str | None, *args: str, as_json: bool = True) -> tuple[int, str, str]:
    """Run `python -m bridge <args>` as a real process (no BRIDGE_CLUSTER_DSN); (exit code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "BRIDGE_CLUSTER_DSN": ""}
    argv = [*args, *(["--dsn", dsn] if dsn else []), *(["--json"] if as_json else [])]
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", *argv],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def cli_json(dsn: str | None, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli(dsn, *args)
    data: dict[str, Any] = json.loads(out) if out.strip() else {}
    return code, data, err
