"""Fixtures for the API tests: a real aiohttp server in front of a real SessionManager.

`bridge` has no WhatsApp server behind it (sessions are created but not connected); `live_bridge`
points the sessions' Baileys at the module's simulator so they really log in and send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.events import EventBus
from tests.simulator.fixture import SimulatorClient

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "rotated-key-fedcba9876543210"
AUTH = {"X-API-Key": API_KEY}


def make_settings(root: Path, **overrides: Any) -> Settings:
    """Settings for one test: private auth root, two keys, fast retries, no monitor."""
    values: dict[str, Any] = {
        "auth_root": root / "auth",
        "api_keys": [API_KEY, OTHER_KEY],
        "monitor_enabled": False,
        "webhook_backoff_initial": 0.05,
        "sse_heartbeat": 1.0,
        "max_body_bytes": 64 * 1024,
        "shutdown_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Bridge:
    client: TestClient[Any, Any]
    manager: Any
    bus: EventBus
    snapshots: Any
    settings: Settings


async def _bridge(settings: Settings, aiohttp_client: Callable[..., Any]) -> AsyncIterator[Bridge]:
    from bridge.sessions.manager import SessionManager
    from bridge.store.snapshots import Snapshots

    settings.auth_root.mkdir(parents=True, exist_ok=True)
    bus = EventBus(settings.events_buffer)
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, bus, snapshots)
    app = create_app(settings, manager, bus, snapshots)
    client = await aiohttp_client(app)
    try:
        yield Bridge(client, manager, bus, snapshots, settings)
    finally:
        await manager.shutdown()


@pytest.fixture
async def bridge(tmp_path: Path, aiohttp_client: Callable[..., Any]) -> AsyncIterator[Bridge]:
    async for b in _bridge(make_settings(tmp_path), aiohttp_client):
        yield b


@pytest.fixture
async def live_bridge(
    tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
) -> AsyncIterator[Bridge]:
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub)
    async for b in _bridge(settings, aiohttp_client):
        yield b
