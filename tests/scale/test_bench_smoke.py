"""The sessions benchmark runs end to end (`--quick`: 3 tenants, one runtime each and pooled) and
reports a pooled runtime's tenants back open with their identity after a SIGKILL and the send
rate of its tenants beside plain Baileys'; its scale run
(`--restart`) restarts a full bridge over linked tenants, measures every process and leaves none
behind. Both are slow (a simulator, Node runtimes, linking): the default suite has
test_idle_work.py and test_open_files.py."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_bench_sessions_quick_run_measures_both_modes_and_a_crash_recovery() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "bench_sessions.py"), "--quick", "--json", cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    result = json.loads(out.decode().strip().splitlines()[-1])
    rows = {row["per_runtime"]: row for row in result["bridge"]}
    assert set(rows) == {1, 3}
    assert rows[1]["processes"] == 3 and rows[3]["processes"] == 1
    assert rows[3]["crash_k"] == 3 and rows[3]["crash_back_s"] > 0
    assert result["plain"][0]["tenants"] == 3 and result["plain"][0]["rss_mib"] > 0
    # the send case: 3 senders (all tenants at T = 3), 50 acked texts each, bridge and plain
    assert all(row["sent"] == 150 and row["send_msgs_per_s"] > 0 for row in rows.values())
    assert result["plain"][0]["sent"] == 150 and result["plain"][0]["send_msgs_per_s"] > 0


@pytest.mark.slow
async def test_bench_sessions_restart_run_measures_a_full_bridge_over_linked_tenants() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "bench_sessions.py"), "--restart", "2,3", "--settle", "1",
        "--idle", "2", "--json", cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    rows = json.loads(out.decode().strip().splitlines()[-1])["restart"]
    assert [row["tenants"] for row in rows] == [2, 3]
    for row in rows:
        assert row["open_after_idle"] == row["tenants"] and row["runtimes"] == 1
        assert row["bridge_rss_mib"] > 0 and row["node_rss_mib"] > 0 and row["simulator_rss_mib"] > 0
        assert row["bridge_fds"] >= 3 * row["tenants"] and row["metrics_bytes"] > 0
        assert row["left_behind"] == 0
