"""One declaration per API operation: it registers the aiohttp route and records the OpenAPI facts.

Why one decorator for both: the document at /api/v1/openapi.json is built from `OPERATIONS`, so
a route cannot exist without its schema entry, and the models named here are the same ones the
handler validates with (`read_body`, `read_query`) and answers with (`json_response`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic
from aiohttp import web

from bridge.api.models import SESSION_ID_PATTERN, WEBHOOK_ID_PATTERN
from bridge.errors import BridgeError, ErrorCode, http_status

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=pydantic.BaseModel)

SNAPSHOT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# Path parameters and the pattern both the router and the schema enforce.
PATH_PARAMS: dict[str, str] = {"id": SESSION_ID_PATTERN, "snap": SNAPSHOT_ID_PATTERN, "hook": WEBHOOK_ID_PATTERN,
                               "msg": r"^[A-Za-z0-9_.:-]{1,128}$", "jid": r"^[0-9A-Za-z+.:_@-]{1,128}$"}
# Error statuses any operation may answer; listed in the schema so clients expect them.
COMMON_ERRORS = (400, 401, 404, 413, 422)


@dataclass(frozen=True)
class Operation:
    """The OpenAPI facts of one route."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    body: type[pydantic.BaseModel] | None
    query: type[pydantic.BaseModel] | None
    responses: dict[int, type[pydantic.BaseModel] | None]
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = COMMON_ERRORS
    public: bool = False
    streaming: bool = False


OPERATIONS: list[Operation] = []


class RequestError(BridgeError):
    """The request itself is wrong (malformed JSON, wrong type, bad query) or names nothing that
    exists; the status comes from the code's row in `bridge.errors.FAILURES`."""

    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message, code=code)
        self.status = http_status(self)


def router_path(path: str) -> str:
    """`/sessions/{id}` -> `/sessions/{id:<regex>}` so a bad id never reaches a handler."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        pattern = PATH_PARAMS.get(name)
        if pattern is None:
            return match.group(0)
        return "{" + name + ":" + pattern.strip("^$") + "}"

    return re.sub(r"\{([A-Za-z_]+)\}", repl, path)


def operation(
    routes: web.RouteTableDef,
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    responses: dict[int, type[pydantic.BaseModel] | None],
    body: type[pydantic.BaseModel] | None = None,
    query: type[pydantic.BaseModel] | None = None,
    media: dict[str, dict[str, Any]] | None = None,
    errors: tuple[int, ...] = COMMON_ERRORS,
    public: bool = False,
    streaming: bool = False,
) -> Callable[[Handler], Handler]:
    """Register `handler` for `method path` and describe it for the OpenAPI document."""

    def wrap(handler: Handler) -> Handler:
        routes.route(method, router_path(path))(handler)
        OPERATIONS.append(
            Operation(
                method=method.lower(),
                path=path,
                operation_id=handler.__name__,
                summary=summary,
                tag=tag,
                body=body,
                query=query,
                responses=responses,
                media=media or {},
                errors=errors,
                public=public,
                streaming=streaming,
            )
        )
        return handler

    return wrap


def _validation_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body; 400 for malformed JSON, 422 for a well-formed wrong one.

    The body size limit is aiohttp's `client_max_size` (Settings.max_body_bytes): `read()` raises
    413 before the whole body is buffered.
    """
    raw = await request.read()
    if not raw.strip():
        raise RequestError("request body is empty; send a JSON object", code=ErrorCode.INVALID_JSON)
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise RequestError(
                "request body is not valid JSON; send a JSON object (Content-Type: application/json)",
                code=ErrorCode.INVALID_JSON,
            ) from None
        raise RequestError(
            f"request body does not match the schema: {_validation_message(exc)}",
            code=ErrorCode.VALIDATION_ERROR,
        ) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """Validate the query string against `model` (422 with the offending parameter named)."""
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise RequestError(
            f"query parameters are invalid: {_validation_message(exc)}", code=ErrorCode.VALIDATION_ERROR
        ) from None


def json_response(model: pydantic.BaseModel, *, status: int = 200) -> web.Response:
    """Serialize a response model exactly as the schema describes it."""
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )
