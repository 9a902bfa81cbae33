"""pytest fixtures that start the WhatsApp server simulator as a real subprocess.

`simulator` is module-scoped (one process per test module; tests must use their own phone
numbers or accounts so they do not collide); `start_simulator()` (re-exported) gives a test its
own process as an async context manager.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.simulator.client import SimulatorClient, SimulatorProcess, start_simulator

__all__ = ["SimulatorClient", "simulator", "simulator_process", "start_simulator"]


@pytest.fixture(scope="module")
def simulator_process() -> Iterator[SimulatorProcess]:
    """The running simulator process (for its log); stopped after the module."""
    proc = SimulatorProcess()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def simulator(simulator_process: SimulatorProcess) -> SimulatorClient:
    """A control client for a simulator started for this test module."""
    return simulator_process.wait_ready()
