"""The virtual phone over HTTP: routes that exist only in a sandbox bridge (docs/sandbox.md).

They let the dashboard (or curl) play the phone: scan a session's QR, type a pairing code, chat
as the simulated contacts. A production bridge never registers them (404), and they are not in
the OpenAPI document, which describes the production contract. Calls go to the simulator's
control API on 127.0.0.1; the bridge's own API key guards them like every other route.
"""

from __future__ import annotations

import zlib
from typing import Any

from aiohttp import web
from pydantic import Field

from bridge.api import state
from bridge.api.models import PHONE_PATTERN, SESSION_ID_PATTERN, Strict
from bridge.api.routing import RequestError
from bridge.api.routing import read_body as _read_body
from bridge.errors import ErrorCode
from bridge.sandbox import SandboxRun

SANDBOX: web.AppKey[SandboxRun] = web.AppKey("sandbox", SandboxRun)
BASE = "/api/v1/sandbox"
CONTACT = r"{phone:[0-9]{7,15}}"
routes = web.RouteTableDef()


class ScanBody(Strict):
    session: str = Field(pattern=SESSION_ID_PATTERN, description="The session whose current QR the phone scans")
    phone: str | None = Field(None, pattern=PHONE_PATTERN, description="The phone's number (default: one per session)")


class PairCodeBody(Strict):
    phone: str = Field(pattern=PHONE_PATTERN, description="The number the session asked a pairing code for")
    code: str = Field(min_length=8, max_length=9, description="The 8-character code the session shows")


class ContactSendBody(Strict):
    to: str = Field(pattern=PHONE_PATTERN, description="The account (a linked session's phone number)")
    text: str = Field(min_length=1, max_length=4096)


def install(app: web.Application, run: SandboxRun) -> None:
    """Register the sandbox routes on `app` (sandbox bridges only)."""
    app[SANDBOX] = run
    app.add_routes(routes)


def phone_for(session: str) -> str:
    """A stable made-up number per session, so scanning again links the same simulated account."""
    return "1555" + str(zlib.crc32(session.encode()) % 10**7).zfill(7)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def _known_contact(run: SandboxRun, phone: str) -> None:
    if phone not in {c.phone for c in run.contacts}:
        raise RequestError(f"no simulated contact {phone}; see GET {BASE} for the contacts", code=ErrorCode.NOT_FOUND)


@routes.get(BASE)
async def describe(request: web.Request) -> web.Response:
    run = request.app[SANDBOX]
    settings = run.settings
    return _json({
        "sandbox": True,
        "simulator": {"ws_url": run.address.ws_url},
        "auth_root": str(settings.auth_root),
        "contacts": [{"phone": c.phone, "name": c.name, "echo": i == 0} for i, c in enumerate(run.contacts)],
    })


@routes.post(BASE + "/scan")
async def scan(request: web.Request) -> web.Response:
    body = await _read_body(request, ScanBody)
    run = request.app[SANDBOX]
    found = request.app[state.MANAGER].current_qr(body.session)  # SessionNotFound: 404
    if found is None or not found.qr:
        raise RequestError(f"session {body.session} shows no QR to scan (not waiting for a scan)",
                           code=ErrorCode.NO_QR)
    phone = (body.phone or phone_for(body.session)).lstrip("+")
    device = await run.phone.scan(found.qr, phone)
    return _json({"phone": phone, "device": device})


@routes.post(BASE + "/pair-code")
async def pair_code(request: web.Request) -> web.Response:
    body = await _read_body(request, PairCodeBody)
    run = request.app[SANDBOX]
    device = await run.phone.enter_pairing_code(body.phone.lstrip("+"), body.code.replace("-", "").upper())
    return _json({"phone": body.phone.lstrip("+"), "device": device})


@routes.post(BASE + "/contacts/" + CONTACT + "/send")
async def contact_send(request: web.Request) -> web.Response:
    run = request.app[SANDBOX]
    phone = request.match_info["phone"]
    _known_contact(run, phone)
    body = await _read_body(request, ContactSendBody)
    return _json(await run.phone.send_text(phone, body.to.lstrip("+"), body.text), 201)


@routes.get(BASE + "/contacts/" + CONTACT + "/chat")
async def contact_chat(request: web.Request) -> web.Response:
    """What the contact received and sent, oldest first (`direction` in or out)."""
    run = request.app[SANDBOX]
    phone = request.match_info["phone"]
    _known_contact(run, phone)
    inbox = [{**m, "direction": "in"} for m in await run.phone.inbox(phone)]
    outbox = [{**m, "direction": "out"} for m in await run.phone.outbox(phone)]
    chat = sorted(inbox + outbox, key=lambda m: float(m.get("t") or 0))
    return _json({"contact": phone, "messages": chat[-100:]})
