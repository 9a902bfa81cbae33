"""The OpenAPI 3.1 document, built from `routing.OPERATIONS` and the pydantic models.

Request bodies use each model's validation schema and responses its serialization schema, both
from pydantic, so the published contract is exactly what the server enforces. Served at
`/api/v1/openapi.json`; `/api/v1/docs` is a small page that renders it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pydantic
from aiohttp import web
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bridge.api.models import ErrorBody
from bridge.api.routing import OPERATIONS, PATH_PARAMS, Operation, operation
from bridge.api.static_files import PAGE_HEADERS, STATIC_DIR

routes = web.RouteTableDef()
REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Malformed request (bad JSON, bad phone, unknown event kind); a request that is not valid HTTP "
    "(e.g. a request line over 8190 bytes) is refused by the HTTP server itself, in text/plain",
    401: "Missing or wrong X-API-Key",
    404: "Unknown session, snapshot or route",
    409: "Conflict with the session's state (e.g. not open, not stopped)",
    413: "Body larger than BRIDGE_MAX_BODY_BYTES",
    422: "Well-formed request with wrong fields or types",
    502: "The Node runtime broke the IPC protocol",
    503: "The Node runtime is unavailable or not ready",
}


def _schemas() -> tuple[dict[Any, Any], dict[str, Any]]:
    pairs: set[tuple[type[pydantic.BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for op in OPERATIONS:
        if op.body is not None:
            pairs.add((op.body, "validation"))
        pairs.update((m, "serialization") for m in op.responses.values() if m is not None)
    ordered = sorted(pairs, key=lambda p: (p[0].__name__, p[1]))
    refs, defs = models_json_schema(ordered, ref_template=REF)
    found: dict[str, Any] = defs.get("$defs", {})
    return dict(refs), found


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, pattern in PATH_PARAMS.items():
        if "{" + name + "}" in op.path:
            path_schema = {"type": "string", "pattern": pattern}
            params.append({"name": name, "in": "path", "required": True, "schema": path_schema})
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop,
                           "description": prop.get("description", "")})
    return params


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else ERROR_TEXT.get(status, "Error")}
        if str(status) in op.media:
            entry["content"] = op.media[str(status)]
        elif model is not None:
            entry["content"] = {"application/json": {"schema": refs[(model, "serialization")]}}
        elif status >= 400:
            entry["content"] = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
        responses[str(status)] = entry
    for status in op.errors:
        content: dict[str, Any] = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
        if status == 400:
            content["text/plain"] = {"schema": {"type": "string"}}
        responses.setdefault(str(status), {"description": ERROR_TEXT.get(status, "Error"), "content": content})
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.public:
        doc["security"] = []
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.streaming:
        doc["x-streaming"] = "text/event-stream; runs until the client disconnects"
    return doc


@cache
def build_document() -> dict[str, Any]:
    """The whole OpenAPI document (computed once; routes are fixed at import time)."""
    refs, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "baileys-bridge",
            "version": "1",
            "description": "Supervises Baileys (WhatsApp Web) sessions; Python owns every byte of auth.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


@operation(routes, "GET", "/api/v1/openapi.json", summary="This document", tag="meta", responses={200: None},
           media={"200": {"application/json": {"schema": {"type": "object"}}}}, errors=(401,))
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.json_response(build_document())


@routes.get("/api/v1/docs")
async def docs_page(request: web.Request) -> web.StreamResponse:
    """Human-readable API reference (static page; it fetches the document with the stored key)."""
    return web.FileResponse(STATIC_DIR / "docs.html", headers=PAGE_HEADERS)
