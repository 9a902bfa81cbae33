"""Each row of docs/reconnection.md, by fault injection in the simulator, through the bridge."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.events import EventBus
from tests.sessions.conftest import MakeManager
from tests.sessions.helpers import TIMEOUT, files_of, kept, link, wait_event
from tests.simulator.client import FaultKind, SimulatorClient


def kinds(bus: EventBus, session: str, kind: str) -> list[dict[str, object]]:
    return [e.data for e in bus.since(0, session) if e.kind == kind]


async def test_515_restart_required_is_followed_at_once(make_manager: MakeManager, simulator: SimulatorClient) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    phone = await link(manager, simulator, "r515")
    pid = manager.get("r515").pid
    seq = bus.last_seq
    await simulator.fault("515", phone=phone)
    await manager.wait_for_state("r515", {"connecting"}, TIMEOUT)
    await manager.wait_for_state("r515", {"open"}, TIMEOUT)
    after = [e for e in bus.since(seq, "r515")]
    states = [(e.data["state"], e.data["reason"]) for e in after if e.kind == "state"]
    assert states[0] == ("connecting", "restart_required") and states[-1][0] == "open"
    assert "reconnecting" not in [s for s, _ in states]  # no backoff, no second start from Python
    assert not [e for e in after if e.kind in ("reconnect", "alert")]
    assert manager.get("r515").pid == pid


@pytest.mark.parametrize(("fault", "reason"), [("drop", "connection_closed"), ("503", "service_unavailable")])
async def test_transient_close_reconnects_with_backoff(
    make_manager: MakeManager, simulator: SimulatorClient, fault: FaultKind, reason: str
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    sid = f"t{fault}"
    phone = await link(manager, simulator, sid)
    creds_before = json.loads((manager.settings.auth_root / sid / "creds.json").read_text())
    seq = bus.last_seq
    await simulator.fault(fault, phone=phone)
    await manager.wait_for_state(sid, {"reconnecting"}, TIMEOUT)
    await manager.wait_for_state(sid, {"open"}, TIMEOUT)
    after = bus.since(seq, sid)
    states = [(e.data["state"], e.data["reason"]) for e in after if e.kind == "state"]
    assert states[0] == ("reconnecting", reason)
    assert [s for s, _ in states][-3:] == ["starting", "connecting", "open"]
    delays = [e.data["delay"] for e in after if e.kind == "reconnect"]
    assert len(delays) == 1 and 0 < float(delays[0]) <= manager.settings.reconnect_initial
    assert not [e for e in after if e.kind == "alert"]
    creds_after = json.loads((manager.settings.auth_root / sid / "creds.json").read_text())
    assert creds_after["me"]["id"] == creds_before["me"]["id"]


async def test_408_timed_out_handshake_reconnects_with_backoff(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus, connect_timeout=3.0)  # the stalled handshake times out after 3 s, not 20
    phone = await link(manager, simulator, "t408")
    seq = bus.last_seq
    await simulator.fault("slow_handshake", delay_ms=60_000, count=1)
    await simulator.fault("drop", phone=phone)
    lost = await wait_event(bus, seq, lambda e: e.kind == "state" and e.data["reason"] == "connection_lost")
    assert lost.data["state"] == "reconnecting"
    await manager.wait_for_state("t408", {"open"}, TIMEOUT)
    reconnecting = [e for e in bus.since(seq, "t408") if e.kind == "state" and e.data["state"] == "reconnecting"]
    assert [e.data["reason"] for e in reconnecting][:2] == ["connection_closed", "connection_lost"]


async def _final_close(
    make_manager: MakeManager, simulator: SimulatorClient, sid: str, fault: FaultKind, state: str
) -> tuple[EventBus, dict[str, bytes], dict[str, bytes], set[str]]:
    """Link, inject a final fault, check nothing reconnects; returns the bus, the folder's files
    before and after, and the names that vanished (neither in the folder nor in the trash)."""
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    phone = await link(manager, simulator, sid)
    folder = manager.settings.auth_root / sid
    before = files_of(folder)
    await simulator.fault(fault, phone=phone)
    info = await manager.wait_for_state(sid, {state}, TIMEOUT)
    assert info.desired_running is False and info.runtime is None and info.pid is None
    await asyncio.sleep(2 * manager.settings.reconnect_max)  # a reconnect, if any, would have happened
    assert manager.get(sid).state == state
    missing = kept(before, folder, manager.settings.bridge_dir / "trash" / sid)
    return bus, before, files_of(folder), missing


@pytest.mark.parametrize(
    ("fault", "state", "reason"), [("401", "logged_out", "logged_out"), ("403", "banned", "banned")]
)
async def test_401_and_403_stop_keep_every_file_snapshot_and_alert(
    make_manager: MakeManager, simulator: SimulatorClient, fault: FaultKind, state: str, reason: str
) -> None:
    sid = f"final{fault}"
    bus, _before, after, missing = await _final_close(make_manager, simulator, sid, fault, state)
    assert not missing, f"files disappeared: {missing}"
    assert json.loads(after["creds.json"])["me"]  # registered creds still on disk
    snaps = kinds(bus, sid, "snapshot")
    assert [s["reason"] for s in snaps] == [reason] and snaps[0]["registered"] is True
    alerts = kinds(bus, sid, "alert")
    assert [(a["alert"], a["severity"]) for a in alerts] == [(reason, "critical")]
    states = [e.data["state"] for e in bus.since(0, sid) if e.kind == "state"]
    assert states[-1] == state and "reconnecting" not in states[states.index("open"):]


async def test_440_connection_replaced_stops_without_fighting(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus, before, after, missing = await _final_close(make_manager, simulator, "r440", "440", "failed")
    assert not missing, f"files disappeared: {missing}"
    me_before, me_after = json.loads(before["creds.json"])["me"], json.loads(after["creds.json"])["me"]
    # the same account; Baileys may add the push name to `me` after the files were first read
    assert (me_after["id"], me_after.get("lid")) == (me_before["id"], me_before.get("lid"))
    alerts = kinds(bus, "r440", "alert")
    assert [(a["alert"], a["severity"]) for a in alerts] == [("connection_replaced", "critical")]
    states = [e.data for e in bus.since(0, "r440") if e.kind == "state"]
    assert states[-1]["reason"] == "connection_replaced"
    assert not kinds(bus, "r440", "reconnect")
