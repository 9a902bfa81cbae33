"""The real runtime against the WhatsApp simulator: QR login, the 515 restart with creds flushed
first, open, and text messages both ways; every auth byte through Python."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgspec

from bridge.config import Settings
from bridge.errors import StoreError
from bridge.ipc import protocol as p
from tests.runtime.conftest import Harness
from tests.simulator.client import SimulatorClient


async def test_qr_login_flushes_creds_before_the_515_restart_and_before_open(
    settings: Settings, make_harness: Callable[..., Harness], simulator: SimulatorClient
) -> None:
    phone = "15550400001"
    h = make_harness(settings, "sim-qr")
    creds_path = settings.auth_root / "sim-qr" / "creds.json"
    on_disk_at: dict[str, Any] = {}

    def check_disk(sid: str, name: str, data: dict[str, Any]) -> None:
        # Read creds.json at the very moment the runtime reports the restart or `open`.
        conn = data.get("connection")
        if name == "connection.update" and conn in ("open", "close"):
            key = "open" if conn == "open" else f"close-{(data.get('disconnect') or {}).get('status_code')}"
            on_disk_at[key] = json.loads(creds_path.read_text())

    h.event_hooks.append(check_disk)
    await h.proc.start()
    await h.proc.call("sim-qr", "start", {"wa_url": simulator.ws_url, "trust_root": simulator.root_pub})
    qr = await h.wait_for(lambda: h.event("sim-qr", "qr"), what="a QR from the simulator")
    assert qr["qr"].count(",") >= 3
    device = await simulator.scan(qr["qr"], phone=phone)

    opened = await h.wait_for(lambda: h.event("sim-qr", "connection.update", lambda d: d.get("connection") == "open"),
                              within=120, what="open after pairing")
    restart = h.event("sim-qr", "connection.update",
                      lambda d: (d.get("disconnect") or {}).get("status_code") == 515)
    assert restart is not None and restart["disconnect"]["reason"] == "restartRequired"
    assert restart["disconnect"]["handled_by_runtime"] is True
    assert on_disk_at["close-515"]["me"]["id"] == device.jid, "creds with `me` were durable before the restart"
    assert on_disk_at["open"]["me"]["id"] == device.jid
    assert opened["me"]["id"] == device.jid

    # Keys Baileys wrote (pre-keys at least) went through Python into legacy-named files.
    names = {f.name for f in creds_path.parent.iterdir()}
    assert any(n.startswith("pre-key-") for n in names), sorted(names)
    assert ("sim-qr", "auth.set") in h.ops

    # Text messages both ways.
    contact = await simulator.create_contact("15550400002")
    sent = await h.proc.call("sim-qr", "send", {"to": contact.jid, "text": "hello from the bridge"}, timeout=120)
    assert sent["id"]
    got = await simulator.wait_inbox(contact.phone, lambda m: m.text == "hello from the bridge", within=120)
    assert got.id == sent["id"]
    await simulator.send_from_contact(contact.phone, phone, "hello back")
    def says_hello_back(d: dict[str, Any]) -> bool:
        return any((m.get("message") or {}).get("conversation") == "hello back" for m in d["messages"])

    upsert = await h.wait_for(lambda: h.event("sim-qr", "messages.upsert", says_hello_back),
                              within=120, what="incoming message")
    assert upsert["type"] == "notify" and upsert["messages"][0]["key"]["fromMe"] is False


async def test_pairing_code_login_and_restart_from_saved_creds(
    settings: Settings, make_harness: Callable[..., Harness], simulator: SimulatorClient
) -> None:
    phone = "15550400011"
    h = make_harness(settings, "sim-code")
    await h.proc.start()
    await h.proc.call("sim-code", "start", {"wa_url": simulator.ws_url, "trust_root": simulator.root_pub,
                                            "login": "pairing_code", "phone": phone})
    await h.wait_for(lambda: h.event("sim-code", "qr"), what="the registration socket is up")
    result = await h.proc.call("sim-code", "request_pairing_code", {"phone": phone}, timeout=120)
    assert len(result["code"]) == 8
    assert h.event("sim-code", "pairing_code")["code"] == result["code"]
    device = await simulator.enter_pairing_code(phone, result["code"])
    await h.wait_for(lambda: h.event("sim-code", "connection.update", lambda d: d.get("connection") == "open"),
                     within=120, what="open after the pairing code")

    # Stop the runtime, start a new one: it logs in from the creds Python holds, without a QR.
    await h.proc.stop()
    h.events.clear()
    await h.proc.start()
    await h.proc.call("sim-code", "start", {"wa_url": simulator.ws_url, "trust_root": simulator.root_pub})
    opened = await h.wait_for(lambda: h.event("sim-code", "connection.update", lambda d: d.get("connection") == "open"),
                              within=120, what="open from saved creds")
    assert opened["me"]["id"] == device.jid
    assert h.event("sim-code", "qr") is None


async def test_no_reconnect_and_no_open_when_creds_cannot_be_made_durable(
    settings: Settings, make_harness: Callable[..., Harness], simulator: SimulatorClient
) -> None:
    """The rule other projects broke: after pairing, creds that could not be stored must not be
    used: the runtime sends nothing more, closes the socket and waits for Python (no reconnect)."""
    phone = "15550400021"
    h = make_harness(settings, "sim-disk")
    refused: list[int] = []

    def disk_full_after_pairing(req: p.Req, args: msgspec.Struct) -> None:
        if isinstance(args, p.CredsSaveArgs) and '"me"' in args.creds:
            refused.append(req.id)
            raise StoreError("no space left on device (simulated)")

    h.request_hooks.append(disk_full_after_pairing)
    await h.proc.start()
    await h.proc.call("sim-disk", "start", {"wa_url": simulator.ws_url, "trust_root": simulator.root_pub})
    qr = await h.wait_for(lambda: h.event("sim-disk", "qr"), what="a QR")
    await simulator.scan(qr["qr"], phone=phone)
    closed = await h.wait_for(
        lambda: h.event("sim-disk", "connection.update", lambda d: d.get("connection") == "close"),
        within=120, what="the close after the refused creds")
    assert refused, "the creds with `me` were offered and refused"
    assert closed["disconnect"]["handled_by_runtime"] is False
    assert "auth write failed" in closed["disconnect"]["message"] or "not durable" in closed["disconnect"]["message"]
    # The runtime waits for Python: no new socket, no `open`, until a `start` comes.
    await asyncio.sleep(3)
    after = h.events[h.events.index(("sim-disk", "connection.update", closed)) + 1:]
    assert not [d for s, n, d in after if n == "connection.update" and d.get("connection") in ("open", "connecting")]
    assert "me" not in json.loads((settings.auth_root / "sim-disk" / "creds.json").read_text())
