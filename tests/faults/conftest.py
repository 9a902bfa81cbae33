"""Fixtures of the fault tests: `make_bridge(...)` builds `python -m bridge` processes (service.py)
over this test's auth root, pointed at the module's simulator; every one is killed at the end
(the test itself stops it cleanly with `verdict.clean_exit` to judge its exit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from tests.faults.service import BridgeProcess
from tests.simulator.client import SimulatorClient

MakeBridge = Callable[..., BridgeProcess]


@pytest.fixture
async def make_bridge(tmp_path: Path, simulator: SimulatorClient) -> AsyncIterator[MakeBridge]:
    """`make_bridge(auth_root=None, *, name="bridge", prefix=(), **BRIDGE_env)` -> BridgeProcess
    (not started); the default root is `tmp_path/auth`. Each bridge has its own work folder (cwd,
    log, and the event log under BRIDGE_STATE_DIR), so two bridges share only the auth root."""
    made: list[BridgeProcess] = []

    def make(auth_root: Path | None = None, *, name: str = "bridge", prefix: Sequence[str] = (),
             **env: str) -> BridgeProcess:
        workdir = tmp_path / f"work-{name}"
        env = {"BRIDGE_STATE_DIR": str(workdir / "state"), **env}
        bridge = BridgeProcess(auth_root or tmp_path / "auth", simulator, workdir, name=name, prefix=prefix, **env)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        await bridge.kill()
