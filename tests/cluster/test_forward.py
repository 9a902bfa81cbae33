"""The forwarding middleware over real HTTP: a front node whose router says which tenant lives
where, and an owner node (a real aiohttp server) that answers what it received. Requests pass
through whole (method, path, query, headers with the API key, body), answers stream back as they
come (SSE), node-level routes stay local, and an unreachable owner is a clear 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.api.errors import error_middleware
from bridge.cluster.forward import FORWARDED_HEADER, make_forward_middleware
from tests.cluster.pg import free_port


class Router:
    """Tenants `remote-*` live at `owner`, `gone-*` at a port nobody listens on, others here."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.dead = f"http://127.0.0.1:{free_port()}"
        self.asked: list[tuple[str, bool, bool]] = []

    async def route(self, session_id: str, *, create: bool = False, forwarded: bool = False) -> str | None:
        self.asked.append((session_id, create, forwarded))
        if forwarded:
            return None
        if session_id.startswith("remote-"):
            return self.owner
        if session_id.startswith("gone-"):
            return self.dead
        return None


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "node": "owner", "method": request.method, "path": request.path, "query": dict(request.query),
        "headers": dict(request.headers), "body": body.decode(),
    }, status=201 if request.method == "POST" else 200, headers={"X-Owner": "yes"})


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(3):
        await response.write(f"data: {i}\n\n".encode())
        await asyncio.sleep(0.3)
    return response


async def local(request: web.Request) -> web.Response:
    return web.json_response({"node": "front", "path": request.path})


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[str, Router]]:
    owner_app = web.Application()
    owner_app.router.add_get("/api/v1/sessions/{id}/events", stream)
    owner_app.router.add_route("*", "/api/v1/sessions/{tail:.*}", echo)
    owner_app.router.add_post("/api/v1/sessions", echo)
    owner = TestServer(owner_app)
    await owner.start_server()
    router = Router(str(owner.make_url("")).rstrip("/"))
    async with aiohttp.ClientSession() as client:
        front_app = web.Application(middlewares=[
            error_middleware, make_forward_middleware(router, node_id="front", timeout=5.0, client=lambda: client)])
        front_app.router.add_route("*", "/{tail:.*}", local)
        front = TestServer(front_app)
        await front.start_server()
        try:
            yield str(front.make_url("")).rstrip("/"), router
        finally:
            await front.close()
            await owner.close()


async def _call(method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def test_a_request_for_another_nodes_tenant_reaches_the_owner_whole_and_its_answer_comes_back(
    nodes: tuple[str, Router],
) -> None:
    front, _ = nodes
    status, headers, data = await _call(
        "POST", f"{front}/api/v1/sessions/remote-1/messages?x=1", json={"to": "1555", "text": "hi"},
        headers={"X-API-Key": "k1", "X-Trace": "t"})
    assert status == 201 and headers["X-Owner"] == "yes"
    assert data["node"] == "owner" and data["path"] == "/api/v1/sessions/remote-1/messages"
    assert data["query"] == {"x": "1"} and data["body"] == '{"to": "1555", "text": "hi"}'
    assert data["headers"]["X-API-Key"] == "k1" and data["headers"]["X-Trace"] == "t"
    assert data["headers"][FORWARDED_HEADER] == "front"


async def test_create_is_routed_by_the_id_in_its_body_and_other_routes_stay_local(nodes: tuple[str, Router]) -> None:
    front, router = nodes
    status, _, data = await _call("POST", f"{front}/api/v1/sessions", json={"id": "remote-new"})
    assert status == 201 and data["node"] == "owner"
    assert ("remote-new", True, False) in router.asked

    for path in ("/healthz", "/api/v1/events", "/api/v1/sessions", "/api/v1/sessions/here-1"):
        assert (await _call("GET", front + path))[2]["node"] == "front", path
    _, _, data = await _call("POST", f"{front}/api/v1/sessions", json={"id": "../bad"})
    assert data["node"] == "front"  # not a valid id: the local handler answers the error


async def test_a_forwarded_request_is_never_forwarded_again(nodes: tuple[str, Router]) -> None:
    front, router = nodes
    _, _, data = await _call("GET", f"{front}/api/v1/sessions/remote-2", headers={FORWARDED_HEADER: "other"})
    assert data["node"] == "front" and ("remote-2", False, True) in router.asked


async def test_an_event_stream_flows_through_as_it_is_written(nodes: tuple[str, Router]) -> None:
    front, _ = nodes
    async with aiohttp.ClientSession() as http, http.get(f"{front}/api/v1/sessions/remote-3/events") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await asyncio.wait_for(response.content.readline(), 5)
        assert first == b"data: 0\n"
        rest = await response.read()
    assert rest.count(b"data: ") == 2


async def test_an_unreachable_owner_is_a_clear_503(nodes: tuple[str, Router]) -> None:
    front, _ = nodes
    status, _, data = await _call("GET", f"{front}/api/v1/sessions/gone-1")
    assert status == 503 and data["error"]["code"] == "cluster_unavailable"
    assert "did not answer" in data["error"]["message"] and "retry" in data["error"]["message"]
