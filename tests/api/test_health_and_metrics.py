"""`/healthz` needs no key and counts sessions per state; `/readyz` and `/metrics` need a key
unless `metrics_public` is set; `/metrics` speaks the Prometheus text format."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bridge.api.app import create_app
from bridge.events import EventBus
from tests.api.conftest import AUTH, Bridge, make_settings


async def test_healthz_counts_sessions_by_state_without_a_key(bridge: Bridge) -> None:
    for sid in ("h1", "h2"):
        response = await bridge.client.post("/api/v1/sessions", json={"id": sid, "start": False}, headers=AUTH)
        assert response.status == 201, await response.text()
    response = await bridge.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok", "sessions": {"total": 2, "stopped": 2}, "event_log": "ok", "storage_fault": None
    }


async def test_readyz_needs_a_key_and_reports_ready(bridge: Bridge) -> None:
    assert (await bridge.client.get("/readyz")).status == 401
    response = await bridge.client.get("/readyz", headers=AUTH)
    assert response.status == 200 and await response.json() == {"ready": True}


async def test_metrics_expose_the_bridge_metrics(bridge: Bridge) -> None:
    await bridge.client.post("/api/v1/sessions", json={"id": "m1", "start": False}, headers=AUTH)
    response = await bridge.client.get("/metrics", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'bridge_sessions{state="stopped"} 1.0' in text
    assert 'bridge_sessions{state="open"} 0.0' in text
    for name in ("bridge_store_write_seconds", "bridge_ipc_violations_total", "bridge_webhook_deliveries_total"):
        assert name in text


async def test_metrics_can_be_public_by_setting(tmp_path: Path) -> None:
    from bridge.sessions.manager import SessionManager
    from bridge.store.snapshots import Snapshots

    settings = make_settings(tmp_path, metrics_public=True)
    settings.auth_root.mkdir(parents=True)
    bus = EventBus()
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, bus, snapshots)
    async with TestClient(TestServer(create_app(settings, manager, bus, snapshots))) as client:
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/api/v1/sessions")).status == 401
    await manager.shutdown()
