"""`GET /sessions/{id}/qr?format=png|svg|txt`: the current login QR, rendered with segno.

The QR is a short-lived credential (whoever scans it owns the account), so responses carry
`Cache-Control: no-store`. When the session is not waiting for a scan the answer is a 404 that
says why (already paired, stopped, or using a pairing code) rather than an empty image.
"""

from __future__ import annotations

import asyncio
import functools
import io
from typing import Any, Literal

import segno
from aiohttp import web
from pydantic import Field

from bridge.api import state
from bridge.api.models import Strict
from bridge.api.routing import RequestError, operation, read_query
from bridge.api.views import state_of
from bridge.errors import ErrorCode

routes = web.RouteTableDef()

CONTENT_TYPES = {"png": "image/png", "svg": "image/svg+xml", "txt": "text/plain; charset=utf-8"}


class QrQuery(Strict):
    format: Literal["png", "svg", "txt"] = Field("png", description="png (default), svg, or txt for a terminal")
    scale: int = Field(8, ge=1, le=40, description="Pixels per module (png and svg)")


@functools.lru_cache(maxsize=32)
def render(ref: str, fmt: str, scale: int = 8) -> bytes:
    """Render `ref` as a QR code; txt uses half-block characters so it fits a terminal.

    segno is pure Python (a PNG takes tens of ms here), so callers run this in a thread; the small
    cache serves a dashboard and a client polling the same short-lived ref without re-rendering.
    """
    qr = segno.make_qr(ref)
    out: Any
    if fmt == "txt":
        out = io.StringIO()
        qr.terminal(out=out, compact=True)
        return str(out.getvalue()).encode()
    out = io.BytesIO()
    qr.save(out, kind=fmt, scale=scale, border=4)
    return bytes(out.getvalue())


@operation(routes, "GET", "/api/v1/sessions/{id}/qr", summary="Current login QR code", tag="sessions",
           query=QrQuery, responses={200: None}, errors=(401, 404, 422),
           media={"200": {
               "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
               "image/svg+xml": {"schema": {"type": "string"}},
               "text/plain": {"schema": {"type": "string"}},
           }})
async def get_qr(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    query = read_query(request, QrQuery)
    manager = request.app[state.MANAGER]
    info = manager.get(session_id)
    found = manager.current_qr(session_id)
    if found is None or not found.qr:
        raise RequestError(
            f"session {session_id} is not waiting for a QR scan (state: {state_of(info)}); "
            "a QR appears after starting a session with login=qr that is not paired yet",
            code=ErrorCode.NO_QR,
        )
    body = await asyncio.to_thread(render, found.qr, query.format, query.scale)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPES[query.format]
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-QR-Expires-At"] = f"{found.expires_at:.3f}"
    return response
