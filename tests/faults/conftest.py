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
    (not started); the default root is `tmp_path/auth`."""
    made: list[BridgeProcess] = []

    def make(auth_root: Path | None = None, *, name: str = "bridge", prefix: Sequence[str] = (),
             **env: str) -> BridgeProcess:
        bridge = BridgeProcess(auth_root or tmp_path / "auth", simulator, tmp_path / "work", name=name,
                               prefix=prefix, **env)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        await bridge.kill()
