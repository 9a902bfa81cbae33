"""The message store shared between nodes (`cluster_messages`, bridge/cluster/messages.py).

With real bridge nodes: a message a contact sent while node A ran the tenant is, after A handed
the tenant over (SIGTERM), quoted, reacted to, fetched and listed on node B, which never received
it; a read receipt for a message A sent, arriving at B, moves that message's shared status forward.
In process (two buses, two SQLite logs, one database): every lookup of the message store falls
back to the shared row, a later status replaces the copied one, retention prunes by count and age,
and a database that is away makes a message unknown within `SHARED_WITHIN` s, with a log line,
instead of an error or a stall."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster import messages as shared_messages
from bridge.cluster.db import open_async_pool
from bridge.cluster.events import COMPONENT, MIGRATIONS, SharedEvents
from bridge.cluster.schema import ensure_schema
from bridge.eventlog.log import EventLog
from bridge.events import EventBus, EventKind
from bridge.messages.model import Message, MessageKind, MessageStatus
from bridge.messages.store import SHARED_WITHIN, MessageStore
from tests.cluster.cluster_nodes import ClusterNode, link, owners
from tests.cluster.pg import PgServer
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

TTL = 4.0
WITHIN = 120.0
T = TypeVar("T")


@pytest.fixture
async def pair(tmp_path: Path, simulator: SimulatorClient, fresh_dsn: str) -> AsyncIterator[list[ClusterNode]]:
    nodes = [ClusterNode(f"m{i}", tmp_path, simulator, fresh_dsn, TTL) for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def until(probe: Callable[[], Awaitable[T | None]], what: str, within: float = WITHIN) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {within:.0f} s: {what}")


def shared_row(dsn: str, sid: str, message_id: str) -> tuple[str, str] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT node_id, raw FROM cluster_messages WHERE session = %s AND id = %s",
                           (sid, message_id)).fetchone()
    return (str(row[0]), str(row[1])) if row else None


async def test_a_message_received_on_node_a_is_quoted_reacted_to_and_listed_on_node_b_after_a_hand_over(
    pair: list[ClusterNode], simulator: SimulatorClient, fresh_dsn: str
) -> None:
    a, b = pair
    sid = "moved"
    info = await link(a, simulator, sid)
    assert owners(fresh_dsn)[sid] == "m0", "the tenant runs on node A"
    me = info["me"].split("@")[0].split(":")[0]
    contact = fresh_phone()
    await simulator.create_contact(contact, push_name="Quinn")
    chat = f"{contact}@s.whatsapp.net"

    theirs = await simulator.send_from_contact(contact, me, "received on node A")
    ours = (await a.api("POST", f"/api/v1/sessions/{sid}/messages", {"to": contact, "text": "sent by node A"}))["id"]
    await simulator.wait_inbox(contact, lambda m: m.id == ours, WITHIN)

    async def copied() -> tuple[str, str] | None:
        return await asyncio.to_thread(shared_row, fresh_dsn, sid, theirs.id)

    node, raw = await until(copied, "node A's relay copied the message row into cluster_messages")
    assert node == "m0" and theirs.id in raw, "the raw WAMessage, as node A stored it"

    assert await a.stop() == 0, a.log()[-3000:]
    await b.wait_open(sid)
    assert owners(fresh_dsn)[sid] == "m1", "node B took the tenant over"

    status, found = await b.call("GET", f"/api/v1/sessions/{sid}/messages/{theirs.id}")
    assert status == 200, found
    assert found["message"]["text"] == "received on node A" and found["message"]["from_me"] is False
    assert found["message"]["chat"] == chat

    reply = (await b.api("POST", f"/api/v1/sessions/{sid}/messages",
                         {"to": contact, "text": "answered by node B", "quoted": theirs.id}))["id"]
    got = await simulator.wait_inbox(contact, lambda m: m.id == reply, WITHIN)
    assert got.quoted is not None and got.quoted.id == theirs.id, "the quote points at node A's message"
    reaction = (await b.api("POST", f"/api/v1/sessions/{sid}/messages",
                            {"kind": "reaction", "message_id": theirs.id, "emoji": "👍"}))["id"]
    got = await simulator.wait_inbox(contact, lambda m: m.id == reaction, WITHIN)
    assert got.reaction is not None and (got.reaction.key_id, got.reaction.emoji) == (theirs.id, "👍")

    async def listed() -> list[Any] | None:
        page = (await b.api("GET", f"/api/v1/sessions/{sid}/messages?chat={chat}"))["messages"]
        ids = [m["id"] for m in page]
        return ids if reply in ids and theirs.id in ids else None

    ids = await until(listed, "node B lists both nodes' messages")
    assert ids.index(reply) < ids.index(theirs.id), "newest first, across both nodes' stores"
    older = (await b.api("GET", f"/api/v1/sessions/{sid}/messages?chat={chat}&before={reply}"))["messages"]
    assert theirs.id in [m["id"] for m in older], "a cursor from node B's store pages into node A's"

    await simulator.send_receipt(contact, me, [ours], "read")

    async def read_on_b() -> dict[str, Any] | None:
        status, found = await b.call("GET", f"/api/v1/sessions/{sid}/messages/{ours}")
        assert status == 200, found
        return dict(found) if found["message"]["status"] == "read" else None

    found = await until(read_on_b, "a read receipt that reached node B lands on node A's sent message")
    whole = [h["status"] for h in found["history"] if not h.get("participant") and h["status"] != "pending"]
    assert whole == ["sent", "delivered", "read"], found["history"]

    status, missing = await b.call("GET", f"/api/v1/sessions/{sid}/messages/3EB0NEVERSTORED")
    assert status == 404, missing


@pytest.fixture
async def stores(tmp_path: Path, fresh_dsn: str, pool: ConnectionPool) -> AsyncIterator[list[MessageStore]]:
    """Two in-process nodes' message stores, each on its own bus and SQLite log, sharing `fresh_dsn`."""
    with pool.connection() as conn:
        ensure_schema(conn, COMPONENT, MIGRATIONS)
    made: list[tuple[EventLog, SharedEvents]] = []
    try:
        for name in ("a", "b"):
            bus = EventBus()
            log = EventLog(tmp_path / name / "events.db", bus)
            await log.open()
            shared = SharedEvents(await open_async_pool(fresh_dsn, name=f"test-{name}"), pool, fresh_dsn, name,
                                  poll=0.5)
            await shared.attach(log)
            made.append((log, shared))
        yield [MessageStore(log.bus) for log, _ in made]
    finally:
        for log, shared in made:
            await log.close()
            await shared.pool.close()


CHAT = "15550001111@s.whatsapp.net"


def received(message_id: str, text: str, at: int) -> tuple[Message, dict[str, Any]]:
    message = Message(id=message_id, session="s", chat=CHAT, sender=CHAT, from_me=False, kind=MessageKind.TEXT,
                      timestamp=at, status=MessageStatus.DELIVERED, text=text)
    return message, {"key": {"remoteJid": CHAT, "id": message_id, "fromMe": False}, "message": {"conversation": text}}


async def test_every_lookup_falls_back_to_the_shared_row_and_a_database_away_means_unknown(
    stores: list[MessageStore], pg_server: PgServer, pool: ConnectionPool, fresh_dsn: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    a, b = stores
    a_log, b_log = EventLog.of(a.bus), EventLog.of(b.bus)
    assert a_log is not None and a_log.shared is not None and b_log is not None
    message, raw = received("3EB0SHARED1", "stored by node a", 1_700_000_000)
    a.put(message, raw)
    a.bus.publish("s", EventKind.MESSAGE, msgspec.to_builtins(message))
    assert await a_log.shared.flush(20)

    entry = await b.fetch("s", message.id)
    assert entry is not None and entry.raw == raw and entry.message.text == "stored by node a"
    assert await b.content_for("s", CHAT, message.id) == ({"conversation": "stored by node a"}, 0)
    assert await b.content_for("s", "19990000000@s.whatsapp.net", message.id) is None, "another chat's id"
    mine, mine_raw = received("3EB0LOCAL1", "stored by node b", 1_700_000_100)
    b.put(mine, mine_raw)
    assert await b.written()
    assert [m.id for m in await b.page("s")] == [mine.id, message.id], "both stores, newest first"
    assert [m.id for m in await b.page("s", before=mine.id)] == [message.id]

    a.report("s", message.id, MessageStatus.READ)
    a.bus.publish("s", EventKind.MESSAGE_STATUS, {"id": message.id, "session": "s", "chat": CHAT,
                                                  "from_me": False, "status": "read"})
    assert await a_log.shared.flush(20)
    found = await b.stored("s", message.id)
    assert found is not None and found.message.status is MessageStatus.READ, "the later copy wins"
    assert [step.status for step in found.history] == [MessageStatus.DELIVERED, MessageStatus.READ]
    shared = b_log.shared.messages() if b_log.shared is not None else None
    row = await shared.message("s", message.id) if shared is not None else None
    assert row is not None
    stale = msgspec.structs.replace(row, status="delivered", history=row.history[:1])
    async with await psycopg.AsyncConnection.connect(fresh_dsn) as conn:
        await shared_messages.upsert(conn, [stale], "a")
    found = await b.stored("s", message.id)
    assert found is not None and found.message.status is MessageStatus.READ, "a stale copy is skipped"

    newer, newer_raw = received("3EB0SHARED2", "newer, by node a", 1_700_000_200)
    a.put(newer, newer_raw)
    a.bus.publish("s", EventKind.MESSAGE, msgspec.to_builtins(newer))
    assert await a_log.shared.flush(20)
    with pool.connection() as conn:
        assert shared_messages.prune(conn, max_age=86400.0, keep=1) == 1, "the newest one per session kept"
    assert await b.stored("s", message.id) is None and await b.stored("s", newer.id) is not None
    with pool.connection() as conn:
        assert shared_messages.prune(conn, max_age=60.0, keep=10, now=time.time() + 120) == 1, "by age"
    assert await b.stored("s", newer.id) is None

    pg_server.stop()
    try:
        caplog.clear()
        started = time.monotonic()
        # the pool alone would wait 30 s for a connection: answering well before shows the store's bound
        assert await asyncio.wait_for(b.fetch("s", "3EB0NOTHERE"), 20) is None
        assert await asyncio.wait_for(b.stored("s", "3EB0NOTHERE"), 20) is None
        page = await asyncio.wait_for(b.page("s"), 20)
        assert [m.id for m in page] == [mine.id], "this node's own rows only"
        print(f"\nthree lookups with the database away answered in {time.monotonic() - started:.1f} s "
              f"(bound {SHARED_WITHIN:g} s each)")
        assert "shared message store cannot be read" in caplog.text
    finally:
        pg_server.start()
