"""Fixtures for the end-to-end session tests: a SessionManager over a temp auth root, pointed at
the module's simulator, that is always shut down (no Node process outlives a test)."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Settings
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from tests.simulator.client import SimulatorClient

_numbers = itertools.count(random.Random(os.getpid()).randrange(10_000, 90_000) * 1000)


def fresh_phone() -> str:
    """A phone number no other test in this process uses (the simulator is shared per module)."""
    return f"1555{next(_numbers):08d}"


def bridge_settings(root: Path, simulator: SimulatorClient, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_root": root,
        "wa_url": simulator.ws_url,
        "wa_trust_root": simulator.root_pub,
        "reconnect_initial": 0.2,
        "reconnect_max": 2.0,
        "restart_backoff_initial": 0.2,
        "restart_backoff_max": 2.0,
        "stop_grace": 15.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)


MakeManager = Callable[..., SessionManager]


@pytest.fixture
async def make_manager(tmp_path: Path, simulator: SimulatorClient) -> AsyncIterator[MakeManager]:
    """`make_manager(**settings)` -> a SessionManager on `tmp_path/auth` (same root each call);
    every manager made is shut down at the end."""
    made: list[SessionManager] = []

    def make(bus: EventBus | None = None, **overrides: Any) -> SessionManager:
        settings = bridge_settings(tmp_path / "auth", simulator, **overrides)
        manager = SessionManager(settings, bus or EventBus(capacity=10_000), Snapshots(settings.auth_root))
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.shutdown()
