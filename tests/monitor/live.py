"""A live bridge for the monitor's end-to-end tests: real Baileys in the bridge's Node runtime,
logged in to the WhatsApp simulator, supervised by the SessionManager, with `run_monitor` wired
as bridge/app.py wires it and alerts going to a local Telegram receiver."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import Settings
from bridge.events import EventBus
from bridge.monitor.alerts import AlertSink, LogSink, TelegramSink
from bridge.monitor.runner import run_monitor
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import wait_event
from tests.monitor.telegram_receiver import TelegramReceiver
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0
_numbers = itertools.count(random.Random(os.getpid() + 9).randrange(10_000, 90_000) * 1000)


def fresh_number(prefix: str = "1556") -> str:
    """A phone number no other test of this process uses (one simulator serves a whole module)."""
    return f"{prefix}{next(_numbers):08d}"


@dataclass
class Bridge:
    settings: Settings
    bus: EventBus
    manager: SessionManager
    snapshots: Snapshots


@asynccontextmanager
async def bridge_with_monitor(
    auth_root: Path, simulator: SimulatorClient, telegram: TelegramReceiver, **overrides: Any
) -> AsyncIterator[Bridge]:
    """SessionManager + run_monitor wired as bridge/app.py wires them."""
    values: dict[str, Any] = {
        "auth_root": auth_root,
        "wa_url": simulator.ws_url,
        "wa_trust_root": simulator.root_pub,
        "reconnect_initial": 0.2,
        "reconnect_max": 2.0,
        "restart_backoff_initial": 0.2,
        "stop_grace": 15.0,
        "monitor_scan_interval": 2.0,
        "monitor_confirm_delay": 0.2,
        "snapshot_min_interval": 0.5,
        **overrides,
    }
    settings = Settings(_env_file=None, **values)
    bus = EventBus(capacity=10_000)
    snapshots = Snapshots(auth_root)
    manager = SessionManager(settings, bus, snapshots)
    sinks: list[AlertSink] = [LogSink(), TelegramSink("77:live", "1", api_base=telegram.base_url)]
    monitor = asyncio.create_task(run_monitor(settings, bus, snapshots, manager=manager, sinks=sinks))
    try:
        yield Bridge(settings, bus, manager, snapshots)
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        await manager.shutdown()


async def link_by_qr(bridge: Bridge, simulator: SimulatorClient, session_id: str) -> str:
    """Create `session_id`, scan its QR with a new phone account, wait for open; returns the phone."""
    phone = fresh_number()
    await simulator.create_account(phone)
    await bridge.manager.create(session_id)
    await bridge.manager.start(session_id)
    await bridge.manager.wait_for_state(session_id, {"qr"}, TIMEOUT)
    qr = bridge.manager.current_qr(session_id)
    assert qr is not None
    await simulator.scan(qr.qr, phone=phone)
    await bridge.manager.wait_for_state(session_id, {"open"}, TIMEOUT)
    return phone


async def link_by_code(bridge: Bridge, simulator: SimulatorClient, session_id: str) -> str:
    """Create `session_id`, link it with a pairing code typed on a new phone, wait for open."""
    phone = fresh_number()
    await simulator.create_account(phone)
    await bridge.manager.create(session_id, "pairing_code", phone)
    code = await bridge.manager.request_pairing_code(session_id, phone)
    await simulator.enter_pairing_code(phone, code)
    await bridge.manager.wait_for_state(session_id, {"open"}, TIMEOUT)
    return phone


async def exchange(
    bridge: Bridge, simulator: SimulatorClient, sid: str, phone: str, contact: str, tag: str
) -> None:
    """One message each way between session `sid` (account `phone`) and `contact`: proves the
    Signal state in the folder works."""
    mark = bridge.bus.last_seq
    await simulator.send_from_contact(contact, phone, f"to bridge {tag}")
    await wait_event(
        bridge.bus, lambda e: e.kind == "message" and e.data.get("text") == f"to bridge {tag}",
        within=TIMEOUT, after=mark,
    )
    sent = await bridge.manager.send_text(sid, contact, f"from bridge {tag}")
    await simulator.wait_inbox(contact, lambda m: m.id == sent.id, TIMEOUT)


def identity(folder: Path) -> tuple[str, str]:
    """The account (me id) and noise key a folder's creds hold."""
    creds = json.loads((folder / "creds.json").read_text())
    return creds["me"]["id"], creds["noiseKey"]["public"]["data"]
