"""Webhook routes: configs, deliveries (the dead-letter list) and redelivery.

The delivery itself is a service (bridge.webhooks.dispatcher); these handlers only validate and
call it. Event kinds in a filter must be known ones (400 `unknown_event_kind` naming the bad
one); first names such as `state` are accepted and stored as their dotted names.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from bridge.api import state
from bridge.api.models import (
    CreateWebhook,
    DeliveryList,
    DeliveryQuery,
    DeliveryView,
    Redeliver,
    Redelivered,
    WebhookConfig,
    WebhookList,
    WebhookSpec,
    WebhookView,
)
from bridge.api.routing import RequestError, json_response, operation, read_body, read_query
from bridge.errors import ErrorCode
from bridge.events import parse_kind
from bridge.webhooks import signing
from bridge.webhooks.config import Webhook, session_webhook_id
from bridge.webhooks.dispatcher import WebhookDispatcher, message_id

routes = web.RouteTableDef()
BASE = "/api/v1/webhooks"
ONE = BASE + "/{hook}"
SESSION_HOOK = "/api/v1/sessions/{id}/webhook"


def _kinds(names: list[str]) -> list[str]:
    try:
        return sorted({parse_kind(name).value for name in names})
    except ValueError as exc:
        raise RequestError(str(exc), code=ErrorCode.UNKNOWN_EVENT_KIND) from None


def _secret(given: str | None) -> str:
    if given is None:
        return signing.new_secret()
    try:
        signing.secret_key(given)
    except ValueError as exc:
        raise RequestError(str(exc), code=ErrorCode.VALIDATION_ERROR) from None
    return given


def _view(hook: Webhook, *, show_secret: bool = False) -> WebhookView:
    return WebhookView(id=hook.id, url=hook.url, events=hook.events, sessions=hook.sessions,
                       created_at=hook.created_at, secret=hook.secret if show_secret else None)


def _dispatcher(request: web.Request) -> WebhookDispatcher:
    return request.app[state.WEBHOOKS]


def _existing(request: web.Request) -> Webhook:
    hook_id = request.match_info["hook"]
    hook = _dispatcher(request).get(hook_id)
    if hook is None:
        raise RequestError(f"no webhook {hook_id}; GET {BASE} lists them", code=ErrorCode.WEBHOOK_NOT_FOUND)
    return hook


def _check_sessions(request: web.Request, sessions: list[str]) -> None:
    manager = request.app[state.MANAGER]
    for session in sessions:
        manager.get(session)  # unknown session: SessionNotFound, 404


async def _store(request: web.Request, hook_id: str, spec: WebhookSpec, status: int) -> web.StreamResponse:
    _check_sessions(request, spec.sessions)
    old = _dispatcher(request).get(hook_id)
    hook = Webhook(id=hook_id, url=spec.url, secret=_secret(spec.secret), events=_kinds(spec.events),
                   sessions=sorted(set(spec.sessions)), created_at=old.created_at if old else time.time())
    await _dispatcher(request).put(hook)
    return json_response(_view(hook, show_secret=spec.secret is None), status=status)


@operation(routes, "GET", BASE, summary="List webhooks (without secrets)", tag="webhooks",
           responses={200: WebhookList}, errors=(401,))
async def list_webhooks(request: web.Request) -> web.StreamResponse:
    return json_response(WebhookList(webhooks=[_view(h) for h in _dispatcher(request).all()]))


@operation(routes, "POST", BASE, summary="Create a webhook (global or for some sessions)", tag="webhooks",
           body=CreateWebhook, responses={201: WebhookView}, errors=(400, 401, 404, 409, 413, 422))
async def create_webhook(request: web.Request) -> web.StreamResponse:
    spec = await read_body(request, CreateWebhook)
    hook_id = spec.id or f"wh_{secrets.token_hex(6)}"
    if _dispatcher(request).get(hook_id) is not None:
        raise RequestError(f"webhook {hook_id} exists; PUT {ONE.format(hook=hook_id)} replaces it",
                           code=ErrorCode.CONFLICT)
    return await _store(request, hook_id, spec, 201)


@operation(routes, "GET", ONE, summary="One webhook (without its secret)", tag="webhooks",
           responses={200: WebhookView}, errors=(401, 404))
async def get_webhook(request: web.Request) -> web.StreamResponse:
    return json_response(_view(_existing(request)))


@operation(routes, "PUT", ONE, summary="Create or replace a webhook", tag="webhooks", body=WebhookSpec,
           responses={200: WebhookView}, errors=(400, 401, 404, 413, 422))
async def put_webhook(request: web.Request) -> web.StreamResponse:
    spec = await read_body(request, WebhookSpec)
    return await _store(request, request.match_info["hook"], spec, 200)


@operation(routes, "DELETE", ONE, summary="Remove a webhook and its undelivered deliveries", tag="webhooks",
           responses={204: None}, errors=(401, 404))
async def delete_webhook(request: web.Request) -> web.StreamResponse:
    hook = _existing(request)
    await _dispatcher(request).remove(hook.id)
    return web.Response(status=204)


@operation(routes, "GET", ONE + "/deliveries", summary="Deliveries of a webhook (state=failed: dead letters)",
           tag="webhooks", query=DeliveryQuery, responses={200: DeliveryList}, errors=(401, 404, 422))
async def list_deliveries(request: web.Request) -> web.StreamResponse:
    hook = _existing(request)
    query = read_query(request, DeliveryQuery)
    dispatcher = _dispatcher(request)
    rows = await dispatcher.deliveries(hook.id, query.state, query.after, query.limit)
    epoch = dispatcher.log.epoch
    return json_response(DeliveryList(deliveries=[
        DeliveryView(seq=r.seq, webhook_id=message_id(epoch, r.seq), session=r.session, kind=r.kind,
                     state=r.state, attempts=r.attempts, created_at=r.created_at,
                     next_at=r.next_at, last_error=r.last_error, done_at=r.done_at)
        for r in rows
    ]))


@operation(routes, "POST", ONE + "/redeliver", summary="Deliver failed deliveries again", tag="webhooks",
           body=Redeliver, responses={200: Redelivered}, errors=(400, 401, 404, 413, 422))
async def redeliver(request: web.Request) -> web.StreamResponse:
    hook = _existing(request)
    spec = await read_body(request, Redeliver) if request.can_read_body else Redeliver()
    count = await _dispatcher(request).redeliver(hook.id, spec.seqs)
    return json_response(Redelivered(requeued=count))


# ----- the per-session webhook of the first API ---------------------------------------------------
@operation(routes, "PUT", SESSION_HOOK, summary="Set the session's webhook (url, secret, event kinds)",
           tag="webhooks", body=WebhookConfig, responses={200: WebhookView}, errors=(400, 401, 404, 413, 422))
async def put_session_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    request.app[state.MANAGER].get(session_id)
    config = await read_body(request, WebhookConfig)
    spec = WebhookSpec(url=config.url, secret=config.secret, events=config.events, sessions=[session_id])
    return await _store(request, session_webhook_id(session_id), spec, 200)


@operation(routes, "GET", SESSION_HOOK, summary="The session's webhook (without its secret)", tag="webhooks",
           responses={200: WebhookView}, errors=(401, 404))
async def get_session_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    hook = _dispatcher(request).get(session_webhook_id(session_id))
    if hook is None:
        raise RequestError(f"session {session_id} has no webhook; PUT {SESSION_HOOK} sets one",
                           code=ErrorCode.WEBHOOK_NOT_FOUND)
    return json_response(_view(hook))


@operation(routes, "DELETE", SESSION_HOOK, summary="Remove the session's webhook", tag="webhooks",
           responses={204: None}, errors=(401, 404))
async def delete_session_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    if not await _dispatcher(request).remove(session_webhook_id(session_id)):
        raise RequestError(f"session {session_id} has no webhook", code=ErrorCode.WEBHOOK_NOT_FOUND)
    return web.Response(status=204)
