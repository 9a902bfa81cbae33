"""Any node answers the API: a request for a tenant another node owns goes to that node.

`make_forward_middleware(router, ...)` is one aiohttp middleware, composed after the API-key and
error middlewares (it only sees authenticated requests; its errors get the API's JSON shape):
- tenant routes (`/api/v1/sessions/{id}` and everything under it, and `POST /api/v1/sessions`
  with an `id` in its body) ask the router who owns the tenant: nobody else (this node holds the
  lease, or claims it now) -> handled here; another live node -> forwarded to its internal URL;
- every other route (health, metrics, webhooks, the event stream, the list of sessions) is a
  node-level route and is answered here.

Forwarding passes the method, path, query, headers (the API key included: the owner checks it
again) and body through, and streams the owner's answer back as it comes (an SSE stream too),
with `X-Bridge-Forwarded: <this node>` so the owner never forwards it again. When the owner
cannot be reached (connection refused, no answer before the timeout, no live heartbeat) the
answer is 503 `cluster_unavailable` saying which node and that a retry is safe: nothing reached
the owner, or the owner stopped answering, and once its lease expires the tenant moves.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from bridge.cluster.db import ClusterUnavailableError
from bridge.store.layout import SESSION_ID_PATTERN

log = logging.getLogger(__name__)

FORWARDED_HEADER: Final = "X-Bridge-Forwarded"
TENANT_PATH: Final = re.compile(r"^/api/v1/sessions/([^/]+)(?:/.*)?$")
CREATE_PATH: Final = "/api/v1/sessions"
SESSION_ID: Final = re.compile(SESSION_ID_PATTERN)
#: Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp recomputes: never passed through.
HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})
CONNECT_TIMEOUT: Final = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OwnerRouter(Protocol):
    """Who serves a tenant: None for this node, else the owner's base URL (`Coordinator.route`)."""

    async def route(self, session_id: str, *, create: bool = False, forwarded: bool = False) -> str | None: ...


async def tenant_of(request: web.Request) -> tuple[str | None, bool]:
    """The tenant a request is about and whether it creates it (None: a node-level request)."""
    match = TENANT_PATH.match(request.path)
    if match is not None:
        return match.group(1), False
    if request.path == CREATE_PATH and request.method == "POST":
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return None, False  # the handler answers the malformed body
        if isinstance(body, dict) and isinstance(body.get("id"), str) and SESSION_ID.fullmatch(body["id"]):
            return body["id"], True
    return None, False


def _passed(headers: CIMultiDict[str] | web.BaseRequest | aiohttp.ClientResponse) -> CIMultiDict[str]:
    source = headers.headers if not isinstance(headers, CIMultiDict) else headers
    return CIMultiDict((k, v) for k, v in source.items() if k.lower() not in HOP_BY_HOP)


def make_forward_middleware(
    router: OwnerRouter, *, node_id: str, timeout: float, client: Callable[[], aiohttp.ClientSession]
) -> Middleware:
    """The forwarding middleware (see the module docstring). `client()` returns the app's shared
    aiohttp client session."""

    @web.middleware
    async def forward_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        session_id, create = await tenant_of(request)
        if session_id is None:
            return await handler(request)
        forwarded = FORWARDED_HEADER in request.headers
        url = await router.route(session_id, create=create, forwarded=forwarded)
        if url is None:
            return await handler(request)
        return await _proxy(request, url, node_id=node_id, limit_s=timeout, client=client())

    return forward_middleware


async def _proxy(
    request: web.Request, base: str, *, node_id: str, limit_s: float, client: aiohttp.ClientSession
) -> web.StreamResponse:
    streaming = "text/event-stream" in request.headers.get("Accept", "") or request.path.endswith("/events")
    limits = aiohttp.ClientTimeout(
        total=None if streaming else limit_s, connect=CONNECT_TIMEOUT, sock_read=None if streaming else limit_s
    )
    headers = _passed(request)
    headers[FORWARDED_HEADER] = node_id
    body = await request.read()
    target = base.rstrip("/") + request.rel_url.path_qs
    try:
        upstream = await client.request(request.method, target, headers=headers, data=body or None,
                                        timeout=limits, allow_redirects=False)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("forwarding %s %s to %s failed: %s", request.method, request.path, base, exc)
        raise ClusterUnavailableError(
            f"the node that owns this session ({base}) did not answer ({exc.__class__.__name__}: {exc}); retry: "
            "if that node is gone, its tenants move to another node once its lease expires"
        ) from exc
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=_passed(upstream))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("the owner %s broke off its answer to %s %s: %s", base, request.method, request.path, exc)
            return response  # headers are sent: ending the body early is all that is left to say
        await response.write_eof()
    return response
