"""Supervision: crash loop -> FATAL with an alert, restart on violations, graceful and forced stop, no orphans."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bridge.config import Settings
from bridge.runtime.process import ProcessState
from tests.runtime.conftest import CHILDREN, Harness

ROOT = Path(__file__).resolve().parents[2]


async def test_a_child_that_exits_at_once_reaches_fatal_after_the_configured_retries(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    settings.crash_loop_exits = 3
    h = make_harness(settings, "crashy", script=CHILDREN / "exit_at_once.mjs", extra_read=[CHILDREN])
    seen = h.bus.since(0)
    try:
        await h.proc.start()
    except Exception as exc:
        assert "could not be started" in str(exc)
    else:
        raise AssertionError("start() must fail for a crash-looping child")
    assert h.proc.state is ProcessState.FATAL
    assert h.proc.restarts == settings.crash_loop_exits - 1
    assert h.proc.last_exit_code == 3
    events = h.bus.since(seen[-1].seq if seen else 0)
    states = [e.data["state"] for e in events if e.kind == "runtime"]
    assert states.count("EXITED") == 3 and states.count("BACKOFF") == 2 and states[-1] == "FATAL"
    alerts = [e for e in events if e.kind == "alert"]
    assert len(alerts) == 1 and alerts[0].data["alert"] == "runtime_crash_loop"
    assert alerts[0].data["severity"] == "critical" and "exiting at once" in alerts[0].data["message"]


async def test_too_many_violations_restart_the_child_and_persistent_ones_end_in_fatal(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    settings.ipc_violations_per_minute = 10
    settings.crash_loop_exits = 3
    h = make_harness(settings, "noisy", script=CHILDREN / "junk.mjs", extra_read=[CHILDREN])
    await h.proc.start()
    await h.wait_for(lambda: h.proc.state is ProcessState.FATAL, what="FATAL after repeated violations")
    assert h.proc.restarts == 2
    assert h.proc.last_exit_code == -signal.SIGTERM, "the child was terminated, not crashed"
    assert h.proc.violations > 30


async def test_graceful_stop_lets_the_real_runtime_exit_on_its_own(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = make_harness(settings, "calm")
    await h.proc.start()
    await h.proc.call("calm", "start", {"wa_url": "ws://127.0.0.1:1/ws/chat"})
    pid = h.proc.pid
    assert pid is not None
    await h.proc.stop()
    assert h.proc.state is ProcessState.STOPPED
    assert h.proc.last_exit_code == 0, "exited by itself after stop + stdin EOF, not by a signal"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_a_child_ignoring_stop_and_sigterm_is_killed(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    settings.stop_grace = 1.0
    settings.term_grace = 1.0
    h = make_harness(settings, "stubborn", script=CHILDREN / "stubborn.mjs", extra_read=[CHILDREN])
    await h.proc.start()
    await h.proc.stop()
    assert h.proc.state is ProcessState.STOPPED
    assert h.proc.last_exit_code == -signal.SIGKILL
    assert any("ignoring SIGTERM" in line for line in h.proc.stderr_tail)


async def test_no_orphan_when_the_bridge_is_killed_with_sigkill(tmp_path: Path) -> None:
    await _kill_bridge_and_expect_no_orphan(tmp_path)


@pytest.mark.slow
async def test_no_orphan_after_many_bridge_sigkills(tmp_path: Path) -> None:
    for i in range(20):
        await _kill_bridge_and_expect_no_orphan(tmp_path / str(i))


async def _kill_bridge_and_expect_no_orphan(tmp_path: Path) -> None:
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.runtime.host_bridge", str(tmp_path / "auth"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert bridge.stdout is not None
    line = await asyncio.wait_for(bridge.stdout.readline(), 120)
    node = psutil.Process(int(line))
    assert "node" in node.name()
    bridge.send_signal(signal.SIGKILL)
    await bridge.wait()
    _gone, alive = await asyncio.to_thread(psutil.wait_procs, [node], 60)
    assert not alive, f"Node runtime {node.pid} outlived the SIGKILLed bridge"
    assert (tmp_path / "auth" / "orphan" / "creds.json").exists()


async def test_stderr_is_drained_continuously_and_tagged(
    settings: Settings, make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(settings, "chatty", script=CHILDREN / "chatty.mjs", extra_read=[CHILDREN])
    with caplog.at_level(logging.INFO, logger="bridge.runtime.process"):
        await h.proc.start()
        await h.wait_for(lambda: h.event("chatty", "ready"), what="ready after 20 MiB of stderr")
        await h.wait_for(lambda: "chatty: done" in h.proc.stderr_tail, what="the last stderr line")
    assert any(r.getMessage() == "[node chatty] chatty: done" for r in caplog.records)


async def test_runtime_exits_when_its_parent_dies_even_if_stdin_stays_open(
    settings: Settings, make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    """The parent-change check alone: the test itself holds the write end of the runtime's stdin."""
    argv = make_harness(settings, "ppid").proc.command()
    read_end, write_end = os.pipe()
    launcher = (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen({argv!r}, stdin={read_end}, stdout=subprocess.DEVNULL, "
        f"stderr=subprocess.DEVNULL, pass_fds=({read_end},), start_new_session=True, "
        "env={**os.environ, 'BRIDGE_PARENT_PID': str(os.getpid())})\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", launcher, stdout=asyncio.subprocess.PIPE,
                                                  pass_fds=(read_end,), cwd=settings.node_runtime_dir)
    os.close(read_end)
    try:
        assert parent.stdout is not None
        node = psutil.Process(int(await asyncio.wait_for(parent.stdout.readline(), 60)))
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        _gone, alive = await asyncio.to_thread(psutil.wait_procs, [node], 60)
        assert not alive, "the runtime must notice its parent changed and exit"
    finally:
        os.close(write_end)


async def test_a_runtime_that_stops_answering_is_restarted_by_the_heartbeat(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    settings.runtime_heartbeat_interval = 0.2
    settings.runtime_heartbeat_timeout = 1.0
    settings.term_grace = 0.5
    settings.crash_loop_exits = 100
    h = make_harness(settings, "deaf", script=CHILDREN / "stubborn.mjs", extra_read=[CHILDREN])
    await h.proc.start()
    first_pid = h.proc.pid
    await h.wait_for(lambda: h.proc.restarts >= 1 and h.proc.state is ProcessState.RUNNING,
                     what="a restart after an unanswered ping")
    assert h.proc.pid != first_pid and not psutil.pid_exists(first_pid or -1)
    alerts = [e.data for e in h.bus.since(0) if e.kind == "alert"]
    assert alerts and alerts[0]["alert"] == "runtime_unresponsive" and alerts[0]["severity"] == "warning"


async def test_the_real_runtime_answers_the_heartbeat_and_is_left_alone(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    settings.runtime_heartbeat_interval = 0.2
    settings.runtime_heartbeat_timeout = 5.0
    h = make_harness(settings, "alive")
    await h.proc.start()
    pid = h.proc.pid
    await asyncio.sleep(2.0)  # about ten pings
    assert h.proc.pid == pid and h.proc.restarts == 0 and h.proc.state is ProcessState.RUNNING
    assert [e for e in h.bus.since(0) if e.kind == "alert"] == []
