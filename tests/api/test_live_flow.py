"""The API in front of real sessions (real Node, real Baileys) against the WhatsApp simulator.

Specification of the tenant's journey over HTTP only: create a session, watch its SSE stream, get
the QR as PNG (it decodes to exactly the ref the session emitted), scan it with the simulator's
phone, see the session open, send a text that the contact receives, receive a reply as an event,
and see every step in order on the stream. Then the operator's side: snapshots (create, verify,
restore refused while running, allowed once stopped) and DELETE that archives without wiping.
"""

from __future__ import annotations

import io
import itertools
import os
import random
from typing import Any

import zxingcpp
from PIL import Image

from tests.api.conftest import AUTH, Bridge
from tests.api.sse import SseMessage, collect_until
from tests.simulator.client import SimulatorClient

TIMEOUT = 180.0
_numbers = itertools.count(random.Random(os.getpid() + 8).randrange(10_000, 90_000) * 1000)


def fresh_phone() -> str:
    return f"1666{next(_numbers):08d}"


def decode_qr_png(png: bytes) -> str:
    image = Image.open(io.BytesIO(png)).convert("L")
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, f"expected one QR code in the PNG, found {len(found)}"
    return str(found[0].text)


def is_state(name: str) -> Any:
    return lambda m: m.event == "session.state" and m.data["data"]["state"] == name


async def test_qr_login_send_and_receive_over_http_with_every_step_on_the_stream(
    live_bridge: Bridge, simulator: SimulatorClient
) -> None:
    client = live_bridge.client
    phone, contact = fresh_phone(), fresh_phone()
    await simulator.create_account(phone)
    await simulator.create_contact(contact)

    response = await client.post("/api/v1/sessions", json={"id": "tenant-a", "start": False}, headers=AUTH)
    assert response.status == 201 and (await response.json())["state"] == "stopped"
    stream = await client.get("/api/v1/sessions/tenant-a/events?after=0", headers=AUTH)
    assert stream.status == 200

    qr_404 = await client.get("/api/v1/sessions/tenant-a/qr", headers=AUTH)
    assert qr_404.status == 404 and "not waiting for a QR scan" in (await qr_404.json())["error"]["message"]

    assert (await client.post("/api/v1/sessions/tenant-a/start", headers=AUTH)).status == 200
    seen = await collect_until(stream, lambda m: m.event == "session.qr", TIMEOUT)
    emitted = seen[-1].data["data"]["qr"]

    png = await client.get("/api/v1/sessions/tenant-a/qr?format=png", headers=AUTH)
    assert png.status == 200 and png.headers["Content-Type"] == "image/png"
    assert png.headers["Cache-Control"] == "no-store"
    decoded = decode_qr_png(await png.read())
    qr_refs = [e.data["qr"] for e in live_bridge.bus.since(0, "tenant-a") if e.kind == "qr"]
    assert decoded in qr_refs, "the PNG encodes exactly a ref the session emitted"
    assert decoded.count(",") >= 3 and emitted in qr_refs
    svg = await client.get("/api/v1/sessions/tenant-a/qr?format=svg", headers=AUTH)
    assert svg.status == 200 and (await svg.text()).lstrip().startswith("<?xml")
    txt = await client.get("/api/v1/sessions/tenant-a/qr?format=txt", headers=AUTH)
    assert txt.status == 200 and "█" in await txt.text()

    early = await client.post("/api/v1/sessions/tenant-a/messages", json={"to": contact, "text": "hi"}, headers=AUTH)
    assert early.status == 409 and (await early.json())["error"]["code"] == "session_state"

    await simulator.scan(decoded, phone=phone)
    seen += await collect_until(stream, is_state("open"), TIMEOUT)
    info = await (await client.get("/api/v1/sessions/tenant-a", headers=AUTH)).json()
    assert info["state"] == "open" and info["me"].startswith(phone)
    gone = await client.get("/api/v1/sessions/tenant-a/qr", headers=AUTH)
    assert gone.status == 404 and (await gone.json())["error"]["code"] == "no_qr"

    sent = await client.post(
        "/api/v1/sessions/tenant-a/messages", json={"to": contact, "text": "hello from the API"}, headers=AUTH
    )
    assert sent.status == 201, await sent.text()
    message_id = (await sent.json())["id"]
    received = await simulator.wait_inbox(contact, lambda m: m.text == "hello from the API", within=TIMEOUT)
    assert received.id == message_id

    await simulator.send_from_contact(contact, phone, "reply from the contact")
    seen += await collect_until(
        stream, lambda m: m.event == "message" and m.data["data"].get("text") == "reply from the contact", TIMEOUT
    )

    states = [m.data["data"]["state"] for m in seen if m.event == "session.state"]
    assert states[0] == "starting" and states[-1] == "open"
    assert states.index("starting") < states.index("qr") < states.index("open")
    kinds = [m.event for m in seen]
    assert kinds.index("session.qr") < kinds.index("message")
    ids = [int(m.id or 0) for m in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "SSE ids are the bus seq: increasing, unique"
    bus_order = [e.seq for e in live_bridge.bus.since(0, "tenant-a") if e.seq <= ids[-1]]
    assert ids == bus_order, "the stream shows every event of the session, in bus order"
    stream.close()

    await _snapshots_and_archive(live_bridge)


async def _snapshots_and_archive(bridge: Bridge) -> None:
    client = bridge.client
    made = await client.post("/api/v1/sessions/tenant-a/snapshots", json={"reason": "api-test"}, headers=AUTH)
    assert made.status == 201, await made.text()
    snap = await made.json()
    assert snap["registered"] is True and any(f["name"] == "creds.json" for f in snap["files"])
    listed = await (await client.get("/api/v1/sessions/tenant-a/snapshots", headers=AUTH)).json()
    assert snap["id"] in [s["id"] for s in listed["snapshots"]]
    verified = await client.post(f"/api/v1/sessions/tenant-a/snapshots/{snap['id']}/verify", headers=AUTH)
    assert verified.status == 200 and (await verified.json())["ok"] is True

    refused = await client.post(f"/api/v1/sessions/tenant-a/snapshots/{snap['id']}/restore", headers=AUTH)
    assert refused.status == 409 and "stop it" in (await refused.json())["error"]["message"]
    stopped = await client.post("/api/v1/sessions/tenant-a/stop", headers=AUTH)
    assert stopped.status == 200
    await bridge.manager.wait_for_state("tenant-a", {"stopped"}, TIMEOUT)
    restored = await client.post(f"/api/v1/sessions/tenant-a/snapshots/{snap['id']}/restore", headers=AUTH)
    assert restored.status == 200, await restored.text()
    assert (await restored.json())["id"] == snap["id"]

    archived = await client.delete("/api/v1/sessions/tenant-a", headers=AUTH)
    assert archived.status == 200 and (await archived.json())["archived"] is True
    assert (bridge.settings.auth_root / "tenant-a" / "creds.json").is_file(), "DELETE never wipes"
    remaining = await (await client.get("/api/v1/sessions", headers=AUTH)).json()
    assert "tenant-a" not in [s["id"] for s in remaining["sessions"]]


async def test_pairing_code_login_over_http(live_bridge: Bridge, simulator: SimulatorClient) -> None:
    client = live_bridge.client
    phone = fresh_phone()
    await simulator.create_account(phone)
    body = {"id": "tenant-p", "login": "pairing_code", "phone": phone, "start": False}
    assert (await client.post("/api/v1/sessions", json=body, headers=AUTH)).status == 201
    stream = await client.get("/api/v1/sessions/tenant-p/events?after=0", headers=AUTH)
    response = await client.post("/api/v1/sessions/tenant-p/pairing-code", json={"phone": phone}, headers=AUTH)
    assert response.status == 200, await response.text()
    code = (await response.json())["code"]
    assert len(code) == 8
    seen: list[SseMessage] = await collect_until(stream, lambda m: m.event == "session.pairing_code", TIMEOUT)
    assert seen[-1].data["data"]["code"] == code
    await simulator.enter_pairing_code(phone, code)
    await collect_until(stream, is_state("open"), TIMEOUT)
    assert (await (await client.get("/api/v1/sessions/tenant-p", headers=AUTH)).json())["state"] == "open"
    bad = await client.post("/api/v1/sessions/tenant-p/pairing-code", json={"phone": "12"}, headers=AUTH)
    assert bad.status == 422

    logout = await client.post("/api/v1/sessions/tenant-p/logout", headers=AUTH)
    assert logout.status == 200, await logout.text()
    await collect_until(stream, is_state("logged_out"), TIMEOUT)
    assert (live_bridge.settings.auth_root / "tenant-p" / "creds.json").is_file(), "logout never deletes creds"
    snaps = await (await client.get("/api/v1/sessions/tenant-p/snapshots", headers=AUTH)).json()
    assert snaps["snapshots"], "a snapshot was taken before logging out"
    again = await client.post("/api/v1/sessions/tenant-p/logout", headers=AUTH)
    assert again.status == 409
    stream.close()
