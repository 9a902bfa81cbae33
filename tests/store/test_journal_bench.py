"""Smoke test of scripts/bench_journal.py: it runs end to end and reports every path (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bridge.config import PROJECT_ROOT

PATHS = ("legacy", "authstore", "journal", "journal_bg", "journal_root")


def test_the_journal_benchmark_runs_and_reports_every_path() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/bench_journal.py", "--quick", "--repeat", "1", "--sessions", "1,2", "--json"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {(r["batch"], r["sessions"]) for r in rows} == {(b, s) for b in (1, 10, 100) for s in (1, 2)}
    for row in rows:
        for path in PATHS:
            assert row[path]["keys_per_s"] > 0 and row[path]["ratio"] > 0
        for path in ("journal", "journal_bg"):
            assert row[path]["fsyncs_per_batch"] == 1.0, "one session per journal: exactly one fdatasync per batch"
        assert 0 < row["journal_root"]["fsyncs_per_batch"] <= 1.0
