"""The published OpenAPI document is the contract: schemathesis fuzzes every operation (with the
API key, against real sessions on the simulator) and no response may be a 5xx, use an undocumented
status or content type, or break its schema. Streaming (SSE) operations are left to test_events.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.api.app import ROUTE_TABLES
from bridge.api.openapi import build_document
from bridge.api.routing import OPERATIONS, router_path
from tests.api.conftest import API_KEY, AUTH, Bridge, _bridge, make_settings
from tests.simulator.client import SimulatorClient

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def test_document_is_openapi_3_1_and_lists_every_operation() -> None:
    doc = build_document()
    assert doc["openapi"].startswith("3.1")
    listed = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert listed == {(op.method, op.path) for op in OPERATIONS}
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    create = doc["paths"]["/api/v1/sessions"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]
    assert schema["properties"]["id"]["pattern"] and schema["additionalProperties"] is False


def test_every_registered_route_is_in_the_document_except_the_html_pages() -> None:
    registered = {
        (route.method.lower(), route.path)
        for table in ROUTE_TABLES
        for route in table
        if isinstance(route, web.RouteDef)
    }
    documented = {(op.method, router_path(op.path)) for op in OPERATIONS}
    assert documented <= registered
    assert {path for _, path in registered - documented} == {"/", "/dashboard", "/api/v1/docs"}


async def test_openapi_json_is_served_with_the_key(bridge: Bridge) -> None:
    assert (await bridge.client.get("/api/v1/openapi.json")).status == 401
    response = await bridge.client.get("/api/v1/openapi.json", headers=AUTH)
    assert response.status == 200 and (await response.json()) == build_document()
    docs = await bridge.client.get("/api/v1/docs")
    assert docs.status == 200 and "openapi.json" in await docs.text()


@pytest.fixture
async def fuzz_bridge(
    tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
) -> AsyncIterator[Bridge]:
    # Pool sessions: the fuzzer creates many, and one Node process per session would not fit here.
    settings = make_settings(
        tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub, sessions_per_runtime=100,
        ipc_request_timeout=10.0,
    )
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_bridge: Bridge) -> None:
    st = shutil.which("schemathesis") or shutil.which("st")
    assert st, "schemathesis is a test dependency (pyproject [test])"
    url = str(fuzz_bridge.client.make_url("/api/v1/openapi.json"))
    proc = await asyncio.create_subprocess_exec(
        st, "run", url,
        "-H", f"X-API-Key: {API_KEY}",
        "--checks", CHECKS,
        "--exclude-path-regex", "/events$",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("BRIDGE_FUZZ_EXAMPLES", "10"),
        "--workers", "1",
        "--request-timeout", "90",
        "--seed", "8",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    sys.stdout.write(text[-6000:])
    assert proc.returncode == 0, text[-6000:]
    assert "Test cases:" in text and " generated" in text
