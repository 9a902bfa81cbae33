"""JSON error middleware: every failure leaves as `{"error": {"code", "message"}}`, never a trace.

Why a status table keyed by error class: the session and store layers raise `BridgeError`s that
know nothing about HTTP; this is the one place that decides what a client sees. Anything
unexpected is logged with its traceback here and answered with a generic 500 message.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bridge import errors as e
from bridge.api.models import ErrorBody, ErrorDetail
from bridge.api.routing import Handler, RequestError

log = logging.getLogger(__name__)

# Most specific first: the first class that matches decides the status.
STATUS_BY_ERROR: tuple[tuple[type[e.BridgeError], int], ...] = (
    (e.SessionNotFound, 404),
    (e.SessionStateError, 409),
    (e.CredsCorruptError, 409),
    (e.HostileNameError, 400),
    (e.SnapshotError, 409),
    (e.SessionError, 400),
    (e.NodeRuntimeError, 503),
    (e.ProtocolError, 502),
    (e.ConfigError, 500),
    (e.StoreError, 500),
)

CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


def error_response(status: int, code: str, message: str) -> web.Response:
    """Build the one error shape the API uses."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return web.Response(body=body.model_dump_json().encode(), status=status, content_type="application/json")


def status_for(exc: e.BridgeError) -> int:
    """HTTP status for a bridge error (500 for a kind the table does not know)."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def _http_message(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such route; see /api/v1/openapi.json for the list of endpoints"
    if exc.status == 405:
        return f"method not allowed here; allowed: {exc.headers.get('Allow', '?')}"
    if exc.status == 413:
        return "request body too large; the limit is BRIDGE_MAX_BODY_BYTES"
    return exc.reason


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn exceptions into JSON error responses with the right status."""
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except e.BridgeError as exc:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s (%s)", request.method, request.path, exc.message, exc.code)
        return error_response(status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = error_response(exc.status, CODE_BY_STATUS.get(exc.status, "http_error"), _http_message(exc))
        if headers:
            response.headers.update(headers)
        return response
    except Exception:
        log.exception("%s %s failed with an unexpected error", request.method, request.path)
        return error_response(500, "internal", "internal error; the bridge log has the details")
