"""JSON error middleware: every failure leaves as `{"error": {"code", "message"}}`, never a trace.

The session and store layers raise `BridgeError`s that know nothing about HTTP; the status comes
from the one table of error codes (`bridge.errors.FAILURES`, shared with the CLI's exit codes). Anything
unexpected is logged with its traceback here and answered with a generic 500 message.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bridge import errors as e
from bridge.api.models import ErrorBody, ErrorDetail
from bridge.api.routing import Handler, RequestError
from bridge.errors import ErrorCode, http_status

log = logging.getLogger(__name__)
SERVER_LOGGER = "aiohttp.server"


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's "Error handling request" traceback for a request that is not valid HTTP
    (a client's fault, already answered 400) into one warning line naming what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.levelno >= logging.ERROR:
            original = record.getMessage()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "%s: malformed HTTP request answered %s (%s)"
            record.args = (original, exc.code or 400, exc.message or type(exc).__name__)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_requests() -> None:
    """Install `MalformedRequestFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())

CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    503: ErrorCode.UNAVAILABLE,
}


def error_response(status: int, code: str, message: str) -> web.Response:
    """Build the one error shape the API uses."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return web.Response(body=body.model_dump_json().encode(), status=status, content_type="application/json")


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
        status = http_status(exc)
        if status >= 500:
            log.error("%s %s failed: %s (%s)", request.method, request.path, exc.message, exc.code)
        return error_response(status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = error_response(exc.status, CODE_BY_STATUS.get(exc.status, ErrorCode.HTTP_ERROR), _http_message(exc))
        if headers:
            response.headers.update(headers)
        return response
    except Exception:
        log.exception("%s %s failed with an unexpected error", request.method, request.path)
        return error_response(500, ErrorCode.INTERNAL, "internal error; the bridge log has the details")
