"""`POST /sessions/{id}/messages`: send a text; answers with the message id once the server acked it.

A session that is not open answers 409 (the manager raises `SessionStateError`), so a client can
tell "retry later" from "bad request".
"""

from __future__ import annotations

from aiohttp import web

from bridge.api import state
from bridge.api.models import MessageSent, SendMessage
from bridge.api.routing import json_response, operation, read_body
from bridge.api.views import state_of
from bridge.errors import SessionStateError
from bridge.sessions.state import SessionState

routes = web.RouteTableDef()


@operation(routes, "POST", "/api/v1/sessions/{id}/messages", summary="Send a text message", tag="messages",
           body=SendMessage, responses={201: MessageSent}, errors=(400, 401, 404, 409, 413, 422, 503))
async def send_message(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    spec = await read_body(request, SendMessage)
    manager = request.app[state.MANAGER]
    current = state_of(manager.get(session_id))
    if current is not SessionState.OPEN:
        raise SessionStateError(
            f"session {session_id} is {current}, not open; start it and wait for state 'open' before sending"
        )
    message_id = await manager.send_text(session_id, spec.to, spec.text)
    return json_response(MessageSent(id=str(message_id)), status=201)
