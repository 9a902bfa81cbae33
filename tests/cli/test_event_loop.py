"""The service's event loop (`BRIDGE_EVENT_LOOP`): uvloop by default, asyncio's own on request.

Specification: `python -m bridge` runs on the loop the setting names, says so in its log, and on
either loop stops cleanly on SIGTERM (exit 0). The areas uvloop touches beyond that (Node children
and their pipes, signals, psycopg in cluster mode) are covered by their own suites, whose service
processes run on the default loop.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import uvloop

from bridge.cli.run import loop_factory
from bridge.config import Settings
from tests.api.service_helpers import bridge_process, free_port, wait_http

TIMEOUT = 120.0
KEY = "event-loop-test-key-0123456789"


def test_uvloop_is_the_default_and_asyncio_can_be_chosen(tmp_path: Path) -> None:
    default = Settings(_env_file=None, auth_root=tmp_path)  # type: ignore[call-arg]
    assert default.event_loop == "uvloop"
    factory = loop_factory(default)
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert loop_factory(Settings(_env_file=None, auth_root=tmp_path, event_loop="asyncio")) is None  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
async def test_the_service_runs_on_the_chosen_loop_and_stops_on_sigterm(tmp_path: Path, name: str) -> None:
    port = free_port()
    env = {"BRIDGE_API_KEYS": KEY, "BRIDGE_PORT": str(port), "BRIDGE_AUTH_ROOT": str(tmp_path / "auth"),
           "BRIDGE_EVENT_LOOP": name, "BRIDGE_LOG_LEVEL": "INFO"}
    async with bridge_process(tmp_path, env, "run") as proc:
        await wait_http(f"http://127.0.0.1:{port}/readyz", {"X-API-Key": KEY})
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    log = out.decode()
    assert proc.returncode == 0, log[-3000:]
    assert f"event loop: {name}" in log, log[-3000:]
    assert "shutdown complete" in log
