"""Every route but /healthz (and the static dashboard shell) needs a key; every error is JSON.

Specifications:
- without X-API-Key, or with a wrong one, every API operation answers 401 with the JSON error shape;
- any of several configured keys works (rotation);
- malformed JSON, wrong types, unknown fields, unknown sessions, unknown routes, wrong methods and
  oversize bodies get a clear 4xx, never a 500 and never a stack trace.
"""

from __future__ import annotations

import pytest

from bridge.api.auth import key_matches
from bridge.api.routing import OPERATIONS
from tests.api.conftest import API_KEY, AUTH, OTHER_KEY, Bridge


def concrete(path: str) -> str:
    return path.replace("{id}", "s1").replace("{snap}", "20260101T000000000000Z-abcdef")


async def assert_error(response: object, status: int, code: str | None = None) -> dict[str, str]:
    from aiohttp import ClientResponse

    assert isinstance(response, ClientResponse)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return dict(body["error"])


def test_key_matching_accepts_any_configured_key_and_nothing_else() -> None:
    assert key_matches("a" * 20, ["x", "a" * 20])
    assert not key_matches("a" * 19, ["a" * 20])
    assert not key_matches("", ["a"])
    assert not key_matches("anything", [])


async def test_without_key_every_operation_but_healthz_answers_401(bridge: Bridge) -> None:
    checked = 0
    for op in OPERATIONS:
        for headers in ({}, {"X-API-Key": "wrong-key"}):
            response = await bridge.client.request(op.method.upper(), concrete(op.path), headers=headers)
            if op.path == "/healthz":
                assert response.status == 200
            else:
                await assert_error(response, 401, "unauthorized")
                assert response.headers["WWW-Authenticate"] == "X-API-Key"
            checked += 1
    assert checked == 2 * len(OPERATIONS) and checked > 30
    await assert_error(await bridge.client.get("/no/such/route"), 401)


async def test_any_configured_key_is_accepted(bridge: Bridge) -> None:
    for key in (API_KEY, OTHER_KEY):
        response = await bridge.client.get("/api/v1/sessions", headers={"X-API-Key": key})
        assert response.status == 200
        assert (await response.json()) == {"sessions": []}


async def test_malformed_json_is_400(bridge: Bridge) -> None:
    response = await bridge.client.post("/api/v1/sessions", data=b'{"id": "a",', headers=AUTH)
    error = await assert_error(response, 400, "invalid_json")
    assert "JSON" in error["message"]
    await assert_error(await bridge.client.post("/api/v1/sessions", data=b"", headers=AUTH), 400, "invalid_json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": 5}, "id"),
        ({"id": "../etc"}, "id"),
        ({"id": "ok", "login": "password"}, "login"),
        ({"id": "ok", "start": "yes please"}, "start"),
        ({"id": "ok", "surprise": 1}, "surprise"),
        (["not", "an", "object"], "body"),
    ],
)
async def test_wrong_types_and_fields_are_422_naming_the_field(bridge: Bridge, body: object, field: str) -> None:
    response = await bridge.client.post("/api/v1/sessions", json=body, headers=AUTH)
    error = await assert_error(response, 422, "validation_error")
    if field != "body":
        assert field in error["message"]


async def test_unknown_session_is_404_everywhere(bridge: Bridge) -> None:
    for method, path in [
        ("GET", "/api/v1/sessions/nobody"),
        ("POST", "/api/v1/sessions/nobody/start"),
        ("POST", "/api/v1/sessions/nobody/stop"),
        ("DELETE", "/api/v1/sessions/nobody"),
        ("GET", "/api/v1/sessions/nobody/qr"),
        ("GET", "/api/v1/sessions/nobody/snapshots"),
        ("GET", "/api/v1/sessions/nobody/events"),
    ]:
        response = await bridge.client.request(method, path, headers=AUTH)
        error = await assert_error(response, 404)
        assert "nobody" in error["message"], (method, path, error)


async def test_oversize_body_is_413(bridge: Bridge) -> None:
    too_big = b'{"id": "a", "pad": "' + b"x" * bridge.settings.max_body_bytes + b'"}'
    response = await bridge.client.post("/api/v1/sessions", data=too_big, headers=AUTH)
    await assert_error(response, 413, "payload_too_large")


async def test_unknown_route_and_wrong_method_are_json(bridge: Bridge) -> None:
    await assert_error(await bridge.client.get("/api/v1/nothing-here", headers=AUTH), 404, "not_found")
    response = await bridge.client.put("/api/v1/sessions", headers=AUTH)
    await assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "raw",
    [b"GET /healthz HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n", b"GET /\x00bad HTTP/1.1\r\n\r\n",
     b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"],
)
async def test_a_malformed_http_request_is_400_and_one_warning_line_not_a_traceback(
    bridge: Bridge, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    server = bridge.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 30)
    writer.close()
    assert answer.split(b" ")[1] == b"400", answer[:100]
    server_records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert server_records, "the bad request is logged"
    for record in server_records:
        assert record.levelname == "WARNING" and record.exc_info is None
        assert "malformed HTTP request" in record.getMessage()
