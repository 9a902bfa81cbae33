"""scripts/bench_ipc.py keeps working (a tiny run; the numbers themselves live in docs/performance.md)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def test_bench_ipc_runs_both_paths_and_prints_ratios(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "bench_ipc.py"), "--rounds", "5", "--dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    for row in ("auth.get  ipc", "auth.get  legacy", "auth.set  ipc", "auth.set  legacy"):
        assert row in text, text
    assert text.count("ratio ipc/legacy") == 2
