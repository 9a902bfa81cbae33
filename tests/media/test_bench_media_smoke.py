"""scripts/bench_media.py runs end to end (a smoke test; it prints numbers and asserts none of them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_media_runs_small_and_prints_every_case() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "scripts/bench_media.py", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for case in ("send image", "receive image", "send document", "receive document"):
        assert case in done.stdout, done.stdout
