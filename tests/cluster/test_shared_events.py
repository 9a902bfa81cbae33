"""The shared event log (bridge/cluster/events.py) and the cluster outbox (bridge/cluster/outbox.py)
against a real PostgreSQL: two in-process "nodes", each with its own SQLite event log and bus,
share one database.

Specified here: shared numbers are contiguous and follow each node's order; a burst is copied in
one transaction; every node's committed stream (SSE) carries every node's events; resume reads the
shared log; retention never prunes an event with an undelivered outbox row; two nodes never claim
the same row; a claim left by a dead node is taken over after it expires; a database restart loses
and duplicates nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.db import open_async_pool
from bridge.cluster.events import COMPONENT, MIGRATIONS, SharedEvents
from bridge.cluster.outbox import PgBacklog, PgOutbox, PgWebhookConfigs
from bridge.cluster.schema import ensure_schema
from bridge.eventlog.log import EventLog
from bridge.eventlog.stream import follow, oldest
from bridge.events import Event, EventBus
from bridge.webhooks.config import Webhook
from tests.cluster.pg import PgServer


@dataclass
class Node:
    """One in-process node: its bus, its own SQLite log, and its shared log."""

    bus: EventBus
    log: EventLog
    shared: SharedEvents


MakeNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path, fresh_dsn: str, pool: ConnectionPool) -> AsyncIterator[MakeNode]:
    with pool.connection() as conn:
        ensure_schema(conn, COMPONENT, MIGRATIONS)
    made: list[Node] = []

    async def make(name: str, **options: float) -> Node:
        bus = EventBus()
        log = EventLog(tmp_path / name / "events.db", bus)
        await log.open()
        events_pool = await open_async_pool(fresh_dsn, name=f"test-{name}")
        shared = SharedEvents(events_pool, pool, fresh_dsn, name, poll=0.5, **options)  # type: ignore[arg-type]
        await shared.attach(log)
        node = Node(bus, log, shared)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.log.close()
        await node.shared.pool.close()


def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(query.encode()).fetchall())


async def _collect(bus: EventBus, log: EventLog, count: int, after: int | None = None,
                   session: str | None = None) -> list[Event]:
    got: list[Event] = []

    async def run() -> None:
        async for event in follow(bus, log, session, after):
            got.append(event)
            if len(got) == count:
                return

    await asyncio.wait_for(run(), 30)
    return got


async def test_shared_numbers_are_contiguous_follow_each_nodes_order_and_a_burst_is_one_transaction(
    make_node: MakeNode, fresh_dsn: str
) -> None:
    a: Node = await make_node("a")
    b: Node = await make_node("b")
    for i in range(200):
        a.bus.publish("alice", "message", {"n": i})
    assert await a.shared.flush(20)
    assert _rows(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM cluster_events") == [(1,)], "one burst, one commit"
    for i in range(50):
        a.bus.publish("alice", "message", {"n": 200 + i})
        b.bus.publish("bob", "message", {"n": i})
        await asyncio.sleep(0)
    assert await a.shared.flush(20) and await b.shared.flush(20)

    rows = _rows(fresh_dsn, "SELECT seq, session, data, node_id, local_seq FROM cluster_events ORDER BY seq")
    assert [r[0] for r in rows] == list(range(1, 301))
    for session, node in (("alice", "a"), ("bob", "b")):
        mine = [r for r in rows if r[1] == session]
        assert {r[3] for r in mine} == {node}
        assert [msgspec.json.decode(str(r[2]))["n"] for r in mine] == list(range(len(mine)))
        assert [r[4] for r in mine] == sorted(r[4] for r in mine)


async def test_every_nodes_stream_carries_every_nodes_events_and_resumes_from_the_shared_log(
    make_node: MakeNode,
) -> None:
    a: Node = await make_node("a")
    b: Node = await make_node("b")
    live_on_b = asyncio.create_task(_collect(b.bus, b.log, 6))
    await asyncio.sleep(0.2)
    for i in range(3):
        a.bus.publish("alice", "message", {"n": i})
        b.bus.publish("bob", "message", {"n": i})
    seen = await live_on_b
    assert [e.seq for e in seen] == list(range(1, 7))
    assert sorted((e.session, e.data["n"]) for e in seen) == sorted(
        [("alice", i) for i in range(3)] + [("bob", i) for i in range(3)])

    resumed_on_a = await _collect(a.bus, a.log, 4, after=2)
    assert [e.seq for e in resumed_on_a] == [3, 4, 5, 6]
    alice = [e for e in seen if e.session == "alice"]
    only_alice = await _collect(b.bus, b.log, 2, after=alice[0].seq, session="alice")
    assert [(e.seq, e.data["n"]) for e in only_alice] == [(e.seq, e.data["n"]) for e in alice[1:]]
    assert [e.data["n"] for e in alice] == [0, 1, 2]
    assert await oldest(b.log) == 1
    assert b.bus.committed_seq == 6


async def test_retention_never_prunes_an_event_with_an_undelivered_outbox_row(
    make_node: MakeNode, fresh_dsn: str, pool: ConnectionPool
) -> None:
    a: Node = await make_node("a", retention_count=0)
    PgWebhookConfigs(pool).put(Webhook(id="w", url="http://127.0.0.1:9/", secret="s", sessions=["kept"]))
    a.bus.publish("kept", "message", {"n": 1})
    a.bus.publish("other", "message", {"n": 2})
    a.bus.publish("kept", "message", {"n": 3})
    assert await a.shared.flush(20)
    _rows(fresh_dsn, "UPDATE cluster_outbox SET state = 'delivered' WHERE seq = 3 RETURNING seq")

    assert await a.shared.prune() == (2, 1)
    assert _rows(fresh_dsn, "SELECT seq FROM cluster_events ORDER BY seq") == [(1,)]
    assert _rows(fresh_dsn, "SELECT seq, state FROM cluster_outbox ORDER BY seq") == [(1, "pending")]


async def test_two_nodes_never_claim_the_same_row_and_a_dead_claimers_rows_are_taken_over(
    make_node: MakeNode, pool: ConnectionPool
) -> None:
    a: Node = await make_node("a", claim_ttl=1.0)
    b: Node = await make_node("b", claim_ttl=1.0)
    PgWebhookConfigs(pool).put(Webhook(id="w", url="http://127.0.0.1:9/", secret="s"))
    for lane in range(40):
        a.bus.publish(f"s{lane}", "message", {"n": 1})
        a.bus.publish(f"s{lane}", "message", {"n": 2})
    assert await a.shared.flush(20)
    on_a, on_b = PgBacklog(a.shared, "w"), PgBacklog(b.shared, "w")
    now = time.time() + 1
    rounds = [await on_a.take_due(now, 5, frozenset()), []]
    rounds += await asyncio.gather(*(backlog.take_due(now, 10, frozenset()) for _ in range(4)
                                      for backlog in (on_a, on_b)))
    taken = [int(job.id) for jobs in rounds for job in jobs]
    assert len(taken) == len(set(taken)), "concurrent claims never hand out one row twice"
    rounds += [await on_a.take_due(now, 100, frozenset()), await on_b.take_due(now, 100, frozenset())]
    taken = [int(job.id) for jobs in rounds for job in jobs]
    assert len(taken) == 40 and len(set(taken)) == 40, "each lane's head exactly once"
    assert {job.data["n"] for jobs in rounds for j in jobs if (job := j.payload) is not None} == {1}
    assert await on_b.take_due(now, 100, frozenset()) == [], "claimed heads block their lanes"

    # a's claims are never settled (a died): after the claim's expiry b takes those rows over.
    mine_a = {int(j.id) for jobs in rounds[0::2] for j in jobs}
    assert len(mine_a) >= 5
    await asyncio.sleep(1.2)
    retaken = await on_b.take_due(time.time() + 1, 100, frozenset())
    assert mine_a <= {int(j.id) for j in retaken}
    for job in retaken:
        await on_b.delivered(job)
    nexts = await on_a.take_due(time.time() + 1, 100, frozenset())
    settled_lanes = {j.key for j in retaken}
    assert {j.key for j in nexts} == settled_lanes and all(j.payload and j.payload.data["n"] == 2 for j in nexts)


async def test_a_stopping_node_releases_its_claims_at_once(make_node: MakeNode, pool: ConnectionPool) -> None:
    a: Node = await make_node("a", claim_ttl=600.0)
    b: Node = await make_node("b", claim_ttl=600.0)
    PgWebhookConfigs(pool).put(Webhook(id="w", url="http://127.0.0.1:9/", secret="s"))
    a.bus.publish("s", "message", {"n": 1})
    assert await a.shared.flush(20)
    assert len(await PgBacklog(a.shared, "w").take_due(time.time() + 1, 5, frozenset())) == 1
    await PgOutbox(a.shared, PgWebhookConfigs(pool)).release()
    assert [j.id for j in await PgBacklog(b.shared, "w").take_due(time.time() + 1, 5, frozenset())] == ["1"]


async def test_a_database_restart_loses_and_duplicates_nothing(
    make_node: MakeNode, pg_server: PgServer, fresh_dsn: str
) -> None:
    a: Node = await make_node("a")
    b: Node = await make_node("b")
    a.bus.publish("alice", "message", {"n": 0})
    assert await a.shared.flush(20)
    live_on_b = b.bus.open_subscription(committed=True)
    await asyncio.to_thread(pg_server.stop)
    try:
        for i in range(1, 30):
            a.bus.publish("alice", "message", {"n": i})
            await asyncio.sleep(0.02)
        assert await a.log.flush(10), "the node's own log takes the events while the database is away"
        assert not await a.shared.flush(1)
    finally:
        await asyncio.to_thread(pg_server.start)
    assert await a.shared.flush(60)
    rows = _rows(fresh_dsn, "SELECT seq, data FROM cluster_events ORDER BY seq")
    assert [r[0] for r in rows] == list(range(1, 31))
    assert [msgspec.json.decode(str(r[1]))["n"] for r in rows] == list(range(30))
    seen_on_b = [await asyncio.wait_for(live_on_b.next(), 30)]
    while seen_on_b[-1].seq < 30:
        seen_on_b.append(await asyncio.wait_for(live_on_b.next(), 30))
    live_on_b.close()
    assert [e.seq for e in seen_on_b if e.seq > 1] == list(range(2, 31)), "the other node caught up, in order, once"


async def test_a_webhook_added_on_one_node_is_known_to_the_others_without_a_restart(
    make_node: MakeNode, pool: ConnectionPool
) -> None:
    a: Node = await make_node("a")
    b: Node = await make_node("b")
    on_a = PgWebhookConfigs(pool)
    store_a = PgOutbox(a.shared, on_a)
    woken = asyncio.Event()
    store_a.connect(None, None, woken.set)
    await asyncio.to_thread(on_a.load)
    assert on_a.all() == []
    hook = Webhook(id="w", url="http://127.0.0.1:9/", secret="s", sessions=["x"])
    await asyncio.to_thread(PgWebhookConfigs(b.shared.sync_pool).put, hook)
    for _ in range(50):
        woken.clear()
        await asyncio.wait_for(woken.wait(), 10)
        if on_a.get("w") is not None:
            break
    assert on_a.get("w") == hook
    await asyncio.to_thread(PgWebhookConfigs(pool).remove, "w")
    for _ in range(50):
        woken.clear()
        await asyncio.wait_for(woken.wait(), 10)
        if on_a.get("w") is None:
            break
    assert on_a.all() == []


async def test_events_a_node_could_not_copy_before_it_stopped_are_copied_once_when_it_starts_again(
    tmp_path: Path, fresh_dsn: str, pool: ConnectionPool, pg_server: PgServer
) -> None:
    with pool.connection() as conn:
        ensure_schema(conn, COMPONENT, MIGRATIONS)
    path = tmp_path / "a" / "events.db"

    async def start() -> Node:
        bus = EventBus()
        log = EventLog(path, bus)
        await log.open()
        shared = SharedEvents(await open_async_pool(fresh_dsn, name="test-restart"), pool, fresh_dsn, "a", poll=0.5)
        await shared.attach(log)
        return Node(bus, log, shared)

    first = await start()
    for i in range(5):
        first.bus.publish("alice", "message", {"n": i})
    assert await first.shared.flush(20)
    await asyncio.to_thread(pg_server.stop)
    try:
        for i in range(5, 10):
            first.bus.publish("alice", "message", {"n": i})
        assert await first.log.flush(10)
        await first.log.close()  # the relay gives up at once: the database is away
        await first.shared.pool.close()
    finally:
        await asyncio.to_thread(pg_server.start)
    assert [r[0] for r in _rows(fresh_dsn, "SELECT seq FROM cluster_events")] == [1, 2, 3, 4, 5]

    again = await start()
    try:
        assert await again.shared.flush(30)
    finally:
        await again.log.close()
        await again.shared.pool.close()
    rows = _rows(fresh_dsn, "SELECT seq, data FROM cluster_events ORDER BY seq")
    assert [(r[0], msgspec.json.decode(str(r[1]))["n"]) for r in rows] == [(i + 1, i) for i in range(10)]


@pytest.mark.slow
async def test_a_large_burst_is_copied_in_pages_and_reaches_the_stream(
    make_node: MakeNode, fresh_dsn: str, pool: ConnectionPool
) -> None:
    """The figure in docs/cluster.md, "Sizing" (events copied per second, transactions)."""
    a: Node = await make_node("a")
    PgWebhookConfigs(pool).put(Webhook(id="w", url="http://127.0.0.1:9/", secret="s"))
    seen = a.bus.open_subscription(committed=True)
    count = 20_000
    started = time.perf_counter()
    for i in range(count):
        a.bus.publish(f"s{i % 50}", "message", {"n": i, "text": "x" * 100})
        if i % 100 == 0:
            await asyncio.sleep(0)
    assert await a.shared.flush(120)
    copied = time.perf_counter() - started
    streamed = [await asyncio.wait_for(seen.next(), 30) for _ in range(count - seen.dropped)]
    seen.close()
    [(transactions, events, rows)] = _rows(fresh_dsn, "SELECT count(DISTINCT e.xmin::text), count(*), "
                                                      "(SELECT count(*) FROM cluster_outbox) FROM cluster_events e")
    print(f"\n{count} events + {rows} outbox rows copied in {copied:.2f} s ({count / copied:.0f}/s) in {transactions} "
          f"transactions; streamed after {time.perf_counter() - started:.2f} s")
    assert events == rows == count
    assert streamed[-1].seq == count
