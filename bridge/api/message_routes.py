"""Messages and chat actions over HTTP: send every kind, read receipts, presence, check numbers,
contact profile, and reading the message store (list a chat's messages, one message with its
status history). Each handler validates its body, asks the `MessageDesk` and shapes the answer;
the rules live in `bridge.messages` (docs/messages.md).

A session that is not open answers 409; nothing invalid reaches the Node runtime.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bridge.api import media_routes, state
from bridge.api.models import Strict
from bridge.api.routing import RequestError, json_response, operation, read_body, read_query
from bridge.errors import ErrorCode
from bridge.messages.desk import MessageDesk
from bridge.messages.send_body import SendBody, SendMedia
from bridge.messages.store import MAX_PAGE, PageCursorUnknown

routes = web.RouteTableDef()
MAX_CHECK = 50


class MessageSent(BaseModel):
    id: str = Field(description="WhatsApp message id, returned after the server acknowledged it")
    persisted: bool = Field(
        True, description="False: the server has the message (do not send it again) but the session's keys "
        "could not be stored; the session pauses until storage works again",
    )
    server_ack: bool = Field(True, description="the WhatsApp server confirmed receipt")


class ReadDone(BaseModel):
    read: list[str] = Field(description="Message ids a read receipt was sent for")


class PresenceBody(Strict):
    type: Literal["available", "unavailable", "composing", "recording", "paused"] = Field(
        description="available/unavailable: the account; composing/recording/paused: a chat state in `to`")
    to: str | None = Field(None, max_length=128, description="The chat (needed for composing, recording, paused)")


class PresenceDone(BaseModel):
    type: str
    to: str | None = None


class SubscribeBody(Strict):
    jid: str = Field(min_length=1, max_length=128, description="Phone number or JID whose presence to follow")


class Subscribed(BaseModel):
    jid: str = Field(description="The JID subscribed to; its changes arrive as `presence` events")


class CheckBody(Strict):
    numbers: list[str] = Field(min_length=1, max_length=MAX_CHECK,
                               description=f"Up to {MAX_CHECK} phone numbers, digits with country code")


class NumberView(BaseModel):
    number: str
    on_whatsapp: bool
    jid: str | None = None
    lid: str | None = Field(None, description="The account's LID, when WhatsApp told it")


class CheckResult(BaseModel):
    results: list[NumberView]


class ProfileView(BaseModel):
    jid: str
    picture_url: str | None = Field(description="Profile picture URL (short-lived), null when none or hidden")
    status: str | None = Field(description="About text, null when none or hidden")


def _desk(request: web.Request) -> MessageDesk:
    return request.app[state.MANAGER].messages


@operation(routes, "POST", "/api/v1/sessions/{id}/messages", summary="Send a message of any kind",
           tag="messages", body=SendBody, responses={201: MessageSent},
           errors=(400, 401, 404, 409, 413, 415, 422, 502, 503))
async def send_message(request: web.Request) -> web.StreamResponse:
    if media_routes.is_multipart(request):
        sent = await media_routes.send_multipart(request)
        return json_response(MessageSent(id=sent.id, persisted=sent.persisted, server_ack=sent.server_ack), status=201)
    body = await media_routes.read_send_body(request)
    if isinstance(body.root, SendMedia):
        sent = await media_routes.media_desk(request).send_json(request.match_info["id"], body.root)
    else:
        sent = await _desk(request).send(request.match_info["id"], body.root)
    return json_response(MessageSent(id=sent.id, persisted=sent.persisted, server_ack=sent.server_ack), status=201)


@operation(routes, "POST", "/api/v1/sessions/{id}/messages/{msg}/read", summary="Mark a received message read",
           tag="messages", responses={200: ReadDone}, errors=(400, 401, 404, 409, 503))
async def read_message(request: web.Request) -> web.StreamResponse:
    read = await _desk(request).read(request.match_info["id"], [request.match_info["msg"]])
    return json_response(ReadDone(read=read))


@operation(routes, "POST", "/api/v1/sessions/{id}/presence", summary="Send presence or a chat state",
           tag="messages", body=PresenceBody, responses={200: PresenceDone}, errors=(400, 401, 404, 409, 422, 503))
async def send_presence(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, PresenceBody)
    if body.type not in ("available", "unavailable") and not body.to:
        raise RequestError(f"presence {body.type} is a chat state: give `to`, the chat it is shown in",
                           code=ErrorCode.VALIDATION_ERROR)
    await _desk(request).presence(request.match_info["id"], body.type, body.to)
    return json_response(PresenceDone(type=body.type, to=body.to))


@operation(routes, "POST", "/api/v1/sessions/{id}/presence/subscribe", summary="Follow a contact's presence",
           tag="messages", body=SubscribeBody, responses={200: Subscribed}, errors=(400, 401, 404, 409, 422, 503))
async def subscribe_presence(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, SubscribeBody)
    return json_response(Subscribed(jid=await _desk(request).subscribe(request.match_info["id"], body.jid)))


@operation(routes, "POST", "/api/v1/sessions/{id}/contacts/check", summary="Which numbers are on WhatsApp",
           tag="messages", body=CheckBody, responses={200: CheckResult}, errors=(400, 401, 404, 409, 422, 503))
async def check_numbers(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, CheckBody)
    checks = await _desk(request).check_numbers(request.match_info["id"], body.numbers)
    return json_response(CheckResult(results=[NumberView(number=c.number, on_whatsapp=c.on_whatsapp, jid=c.jid,
                                                         lid=c.lid) for c in checks]))


@operation(routes, "GET", "/api/v1/sessions/{id}/contacts/{jid}/profile", summary="A contact's picture and status",
           tag="messages", responses={200: ProfileView}, errors=(400, 401, 404, 409, 503))
async def contact_profile(request: web.Request) -> web.StreamResponse:
    profile = await _desk(request).profile(request.match_info["id"], request.match_info["jid"])
    return json_response(ProfileView(jid=profile.jid, picture_url=profile.picture_url, status=profile.status))



class MessagesQuery(Strict):
    chat: str | None = Field(None, max_length=128, description="Only this chat (user or group JID)")
    before: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                               description="Older than this message id (the `next_before` of the previous page), "
                               "or, all digits, older than this Unix second")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Page size (at most {MAX_PAGE})")


class MessageView(BaseModel):
    """The one message model (docs/messages.md); kind-specific fields are present for their kind."""

    model_config = ConfigDict(extra="allow")
    id: str
    session: str
    chat: str
    sender: str
    from_me: bool
    kind: str
    timestamp: int = Field(description="Unix seconds, as WhatsApp stamped the message")
    status: str = Field(description="Latest status: pending, sent, delivered, read, played, failed")


class MessagePage(BaseModel):
    messages: list[MessageView] = Field(description="Newest first")
    next_before: str | None = Field(description="Pass as `before` for the next (older) page; null on the last page")


class StatusStepView(BaseModel):
    status: str
    at: float = Field(description="When the bridge learnt it (Unix time)")
    participant: str | None = Field(None, description="In groups: whose receipt it was")
    implied: bool = Field(False, description="No receipt said so; a later status proves it")


class StoredMessageView(BaseModel):
    message: MessageView
    history: list[StatusStepView] = Field(description="Every status step, oldest first")


def _view(message: Any) -> MessageView:
    return MessageView.model_validate(msgspec.to_builtins(message))


@operation(routes, "GET", "/api/v1/sessions/{id}/messages", summary="Stored messages, newest first",
           tag="messages", query=MessagesQuery, responses={200: MessagePage}, errors=(401, 404, 422, 503))
async def list_messages(request: web.Request) -> web.StreamResponse:
    session = request.match_info["id"]
    request.app[state.MANAGER].get(session)
    query = read_query(request, MessagesQuery)
    try:
        found = await _desk(request).store.page(session, chat=query.chat, before=query.before, limit=query.limit)
    except PageCursorUnknown:
        raise RequestError(f"before: session {session} has no stored message {query.before!r}; pass the "
                           "`next_before` of the previous page or a Unix time", code=ErrorCode.MESSAGE_NOT_FOUND
                           ) from None
    more = len(found) == query.limit
    return json_response(MessagePage(messages=[_view(m) for m in found],
                                     next_before=found[-1].id if more else None))


@operation(routes, "GET", "/api/v1/sessions/{id}/messages/{msg}", summary="One stored message and its statuses",
           tag="messages", responses={200: StoredMessageView}, errors=(401, 404, 503))
async def get_message(request: web.Request) -> web.StreamResponse:
    session, message_id = request.match_info["id"], request.match_info["msg"]
    request.app[state.MANAGER].get(session)
    stored = await _desk(request).store.stored(session, message_id)
    if stored is None:
        raise RequestError(f"session {session} has no stored message {message_id!r} (never seen, or pruned by "
                           "BRIDGE_MESSAGE_RETENTION_DAYS/COUNT)", code=ErrorCode.MESSAGE_NOT_FOUND)
    history = [StatusStepView.model_validate(msgspec.to_builtins(step)) for step in stored.history]
    return json_response(StoredMessageView(message=_view(stored.message), history=history))
