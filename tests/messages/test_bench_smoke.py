"""scripts/bench_messages.py runs end to end (a smoke test; it prints numbers and asserts none)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_messages_runs_quickly_and_prints_every_case() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "scripts/bench_messages.py", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for case in ("1 session, sequential", "1 session, 10 in flight", "2 sessions, 10 in flight each"):
        assert case in done.stdout
