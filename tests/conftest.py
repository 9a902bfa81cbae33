"""Project-wide test fixtures.

The one rule every test module shares: no process started by a test survives the run. The
session-scoped `no_orphans` fixture checks with psutil after the last test and fails the run (after
killing them) if any child of pytest is still alive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest

pytest_plugins = ["tests.simulator.fixture"]


@pytest.fixture(scope="session", autouse=True)
def no_orphans() -> Iterator[None]:
    yield
    me = psutil.Process(os.getpid())
    survivors = [p for p in me.children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in survivors:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    if survivors:
        names = ", ".join(f"{p.pid}:{p.name()}" for p in survivors if p.is_running())
        pytest.fail(f"processes outlived the test run: {names or len(survivors)}")
