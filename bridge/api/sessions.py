"""Session routes: list, create, get, start, stop, logout, and DELETE (= stop and archive).

DELETE never wipes anything: the manager stops the session, takes a final snapshot and marks it
archived; the auth folder stays on disk for an operator to restore or adopt later.
"""

from __future__ import annotations

from aiohttp import web

from bridge.api import state
from bridge.api.models import CreateSession, PairingCodeRequest, PairingCodeView, SessionList, SessionView
from bridge.api.routing import json_response, operation, read_body
from bridge.api.views import session_view

routes = web.RouteTableDef()
BASE = "/api/v1/sessions"


async def _view(request: web.Request, session_id: str) -> SessionView:
    return session_view(request.app[state.MANAGER].get(session_id))


@operation(routes, "GET", BASE, summary="List sessions", tag="sessions", responses={200: SessionList})
async def list_sessions(request: web.Request) -> web.StreamResponse:
    infos = request.app[state.MANAGER].list()
    return json_response(SessionList(sessions=[session_view(i) for i in infos]))


@operation(routes, "POST", BASE, summary="Create a session (and start it unless start=false)", tag="sessions",
           body=CreateSession, responses={201: SessionView}, errors=(400, 401, 409, 413, 422, 503))
async def create_session(request: web.Request) -> web.StreamResponse:
    spec = await read_body(request, CreateSession)
    manager = request.app[state.MANAGER]
    await manager.create(spec.id, spec.login, spec.phone)
    if spec.start:
        await manager.start(spec.id)
    return json_response(await _view(request, spec.id), status=201)


@operation(routes, "GET", BASE + "/{id}", summary="Get one session", tag="sessions", responses={200: SessionView})
async def get_session(request: web.Request) -> web.StreamResponse:
    return json_response(await _view(request, request.match_info["id"]))


@operation(routes, "DELETE", BASE + "/{id}", summary="Stop and archive (final snapshot; files stay on disk)",
           tag="sessions", responses={200: SessionView}, errors=(400, 401, 404, 409, 503))
async def archive_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    manager = request.app[state.MANAGER]
    await manager.archive(session_id)
    webhooks = request.app.get(state.WEBHOOKS)
    if webhooks is not None:
        await webhooks.remove(session_id)
    return json_response(await _view(request, session_id))


@operation(routes, "POST", BASE + "/{id}/start", summary="Start (connect) a session", tag="sessions",
           responses={200: SessionView}, errors=(400, 401, 404, 409, 503))
async def start_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    await request.app[state.MANAGER].start(session_id)
    return json_response(await _view(request, session_id))


@operation(routes, "POST", BASE + "/{id}/stop", summary="Stop a session cleanly (creds flushed)", tag="sessions",
           responses={200: SessionView}, errors=(400, 401, 404, 409, 503))
async def stop_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    await request.app[state.MANAGER].stop(session_id)
    return json_response(await _view(request, session_id))


@operation(routes, "POST", BASE + "/{id}/logout", summary="Log out on WhatsApp (snapshot first; nothing deleted)",
           tag="sessions", responses={200: SessionView}, errors=(400, 401, 404, 409, 503))
async def logout_session(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    await request.app[state.MANAGER].logout(session_id)
    return json_response(await _view(request, session_id))


@operation(routes, "POST", BASE + "/{id}/pairing-code", summary="Request a pairing code for a phone number",
           tag="sessions", body=PairingCodeRequest, responses={200: PairingCodeView},
           errors=(400, 401, 404, 409, 413, 422, 503))
async def pairing_code(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    spec = await read_body(request, PairingCodeRequest)
    code = await request.app[state.MANAGER].request_pairing_code(session_id, spec.phone)
    return json_response(PairingCodeView(code=str(code)))
