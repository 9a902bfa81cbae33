"""QR and pairing-code login end to end: real Baileys in the real runtime, through the bridge,
against the simulator."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from bridge.events import EventBus
from tests.sessions.conftest import MakeManager, fresh_phone
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0


async def test_qr_login_end_to_end_and_back_after_a_restart_without_a_qr(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    phone = fresh_phone()
    await simulator.create_account(phone)
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    await manager.create("tenant-qr")
    await manager.start("tenant-qr")
    await manager.wait_for_state("tenant-qr", {"qr"}, TIMEOUT)
    qr = manager.current_qr("tenant-qr")
    assert qr is not None and qr.qr.count(",") >= 3
    published = [e for e in bus.since(0, "tenant-qr") if e.kind == "qr"]
    assert published and published[-1].data["qr"] == qr.qr and published[-1].data["expires_at"] > 0

    device = await simulator.scan(qr.qr, phone=phone)
    info = await manager.wait_for_state("tenant-qr", {"open"}, TIMEOUT)
    assert info.me is not None and info.me.split(":")[0].split("@")[0] == phone
    assert manager.current_qr("tenant-qr") is None
    creds = json.loads((manager.settings.auth_root / "tenant-qr" / "creds.json").read_text())
    assert creds["me"]["id"].startswith(phone)
    states = [e.data["state"] for e in bus.since(0, "tenant-qr") if e.kind == "state"]
    assert states[0] == "starting" and states[-1] == "open" and "qr" in states
    assert (await simulator.device(device.jid)) is not None
    assert (REGISTRY.get_sample_value("bridge_sessions", {"state": "open"}) or 0) >= 1
    await manager.shutdown()
    assert manager.get("tenant-qr").desired_running is True

    bus2 = EventBus(capacity=10_000)
    again = make_manager(bus2)
    assert await again.start_all() == ["tenant-qr"]
    await again.wait_for_state("tenant-qr", {"open"}, TIMEOUT)
    assert not [e for e in bus2.since(0) if e.kind == "qr"]


async def test_pairing_code_login_end_to_end(make_manager: MakeManager, simulator: SimulatorClient) -> None:
    phone = fresh_phone()
    await simulator.create_account(phone)
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    await manager.create("tenant-pair", "pairing_code", phone)
    code = await manager.request_pairing_code("tenant-pair", phone)
    assert len(code) == 8
    assert manager.get("tenant-pair").state == "pairing"
    assert [e.data["code"] for e in bus.since(0, "tenant-pair") if e.kind == "pairing_code"] == [code]
    await simulator.enter_pairing_code(phone, code)
    info = await manager.wait_for_state("tenant-pair", {"open"}, TIMEOUT)
    assert info.me is not None and info.me.startswith(phone)
    creds = json.loads((manager.settings.auth_root / "tenant-pair" / "creds.json").read_text())
    assert creds["me"]["id"].startswith(phone) and creds["registered"] is True
