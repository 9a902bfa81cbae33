"""SSE streams: events arrive in order with their log seq as the SSE id, one session's stream shows
only that session, `Last-Event-ID` resumes from the event log (across a restart too), a gap left
by retention is announced, keep-alives flow, and shutdown ends open streams instead of hanging."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bridge.api.app import create_app
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from tests.api.conftest import AUTH, Bridge, make_settings
from tests.api.sse import collect_until, next_message


async def _create(bridge: Bridge, sid: str) -> None:
    response = await bridge.client.post("/api/v1/sessions", json={"id": sid, "start": False}, headers=AUTH)
    assert response.status == 201, await response.text()


async def test_all_events_stream_in_order_with_seq_ids(bridge: Bridge) -> None:
    # Resuming from the current seq: nothing published from now on can slip past the stream.
    response = await bridge.client.get(f"/api/v1/events?after={bridge.bus.last_seq}", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-store"
    published = [bridge.bus.publish(f"s{i % 2}", "message", {"n": i}) for i in range(5)]
    got = await collect_until(response, lambda m: m.event == "message" and m.data["data"]["n"] == 4)
    tests = [m for m in got if m.event == "message"]
    assert [m.data["data"]["n"] for m in tests] == [0, 1, 2, 3, 4]
    assert [int(m.id or 0) for m in tests] == [e.seq for e in published]
    assert tests[1].data["session"] == "s1"
    response.close()


async def test_session_stream_shows_only_that_session(bridge: Bridge) -> None:
    await _create(bridge, "alpha")
    response = await bridge.client.get("/api/v1/sessions/alpha/events?after=0", headers=AUTH)
    assert response.status == 200
    bridge.bus.publish("beta", "message", {"n": 1})
    bridge.bus.publish("alpha", "message", {"n": 2})
    got = await collect_until(response, lambda m: m.event == "message")
    assert all(m.data["session"] == "alpha" for m in got)
    assert got[-1].data["data"] == {"n": 2}
    response.close()


async def test_last_event_id_resumes_from_the_log(bridge: Bridge) -> None:
    first = [bridge.bus.publish("r", "message", {"n": i}) for i in range(6)]
    resume_after = first[2].seq
    response = await bridge.client.get("/api/v1/events", headers={**AUTH, "Last-Event-ID": str(resume_after)})
    got = await collect_until(response, lambda m: m.event == "message" and m.data["data"]["n"] == 5)
    assert [m.data["data"]["n"] for m in got if m.event == "message"] == [3, 4, 5]
    bridge.bus.publish("r", "message", {"n": 6})
    live = await next_message(response)
    assert live.data["data"] == {"n": 6} and int(live.id or 0) == first[-1].seq + 1
    response.close()


async def test_a_resume_point_older_than_the_log_is_announced_as_a_gap(tmp_path: Path) -> None:
    from bridge.sessions.manager import SessionManager
    from bridge.store.snapshots import Snapshots

    settings = make_settings(tmp_path)
    settings.auth_root.mkdir(parents=True)
    bus = EventBus(capacity=3)
    log = EventLog(tmp_path / "state" / "events.db", bus, retention_count=3)
    await log.open()
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, bus, snapshots)
    for i in range(10):
        bus.publish("g", "message", {"n": i})
    assert await log.flush()
    assert (await log.prune()).events == 7
    async with TestClient(TestServer(create_app(settings, manager, bus, snapshots, event_log=log))) as client:
        response = await client.get("/api/v1/events?after=1", headers=AUTH)
        gap = await next_message(response)
        assert gap.event == "gap"
        rest = await collect_until(response, lambda m: m.data.get("data", {}).get("n") == 9)
        assert [m.data["data"]["n"] for m in rest] == [7, 8, 9]
        response.close()
    await manager.shutdown()
    await log.close()


async def test_sse_resumes_across_a_restart_from_the_log(tmp_path: Path) -> None:
    from bridge.sessions.manager import SessionManager
    from bridge.store.snapshots import Snapshots

    settings = make_settings(tmp_path)
    settings.auth_root.mkdir(parents=True)
    path = tmp_path / "state" / "events.db"
    before = EventBus()
    log = EventLog(path, before)
    await log.open()
    first = [before.publish("r", "message", {"n": i}) for i in range(5)]
    await log.close()

    after = EventBus()  # a new process: nothing in memory
    log = EventLog(path, after)
    assert await log.open() == first[-1].seq
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, after, snapshots)
    async with TestClient(TestServer(create_app(settings, manager, after, snapshots, event_log=log))) as client:
        response = await client.get("/api/v1/events", headers={**AUTH, "Last-Event-ID": str(first[1].seq)})
        got = await collect_until(response, lambda m: m.event == "message" and m.data["data"]["n"] == 4)
        assert [(int(m.id or 0), m.data["data"]["n"]) for m in got] == [(e.seq, e.data["n"]) for e in first[2:]]
        live = after.publish("r", "message", {"n": 5})
        assert live.seq == first[-1].seq + 1, "numbering goes on after the restart"
        assert (await next_message(response)).data["data"] == {"n": 5}
        response.close()
    await manager.shutdown()
    await log.close()


async def test_keep_alive_comments_flow_while_idle(bridge: Bridge) -> None:
    response = await bridge.client.get("/api/v1/events", headers=AUTH)
    lines = []
    for _ in range(4):
        lines.append(await asyncio.wait_for(response.content.readline(), 30))
    assert b": keep-alive\n" in lines
    response.close()


async def test_bad_last_event_id_is_422(bridge: Bridge) -> None:
    response = await bridge.client.get("/api/v1/events", headers={**AUTH, "Last-Event-ID": "yesterday"})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "validation_error"


async def test_shutdown_ends_open_streams(bridge: Bridge) -> None:
    response = await bridge.client.get("/api/v1/events", headers=AUTH)
    assert response.status == 200
    assert await response.content.readline() == b"retry: 2000\n"  # the stream is registered by now
    await asyncio.wait_for(bridge.client.server.app.shutdown(), 30)
    await asyncio.wait_for(response.content.read(), 30)
    assert response.content.at_eof()


async def test_a_resume_the_log_cannot_serve_ends_the_stream_instead_of_going_silent(tmp_path: Path) -> None:
    from bridge.sessions.manager import SessionManager
    from bridge.store.snapshots import Snapshots

    settings = make_settings(tmp_path)
    settings.auth_root.mkdir(parents=True)
    bus = EventBus()
    unreadable = EventLog(tmp_path / "state" / "never-created.db", bus)  # not opened: nothing to read
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, bus, snapshots)
    async with TestClient(TestServer(create_app(settings, manager, bus, snapshots, event_log=unreadable))) as client:
        response = await client.get("/api/v1/events?after=0", headers=AUTH)
        assert response.status == 200
        await asyncio.wait_for(response.content.read(), 30)
        assert response.content.at_eof(), "the client reconnects with its Last-Event-ID"
    await manager.shutdown()
    await unreadable.close()
