"""The event log: durable before visible, one transaction per burst, retention that spares
undelivered webhook rows, and faults (full disk, deleted file) that lose nothing acknowledged.

The full-disk test mounts a real 1 MiB tmpfs (skipped where mounting is not allowed).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.eventlog import log as eventlog_log
from bridge.eventlog.log import EventLog, OutboxRow
from bridge.eventlog.retention import prune
from bridge.eventlog.stream import follow
from bridge.events import Event, EventBus


def rows(path: Path, sql: str = "SELECT seq FROM events ORDER BY seq") -> list[tuple[object, ...]]:
    """Read the file with a separate connection, as another process would."""
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql).fetchall())


def commits() -> float:
    return REGISTRY.get_sample_value("bridge_event_log_commit_seconds_count") or 0.0


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[EventBus, EventLog]]:
    bus = EventBus()
    log = EventLog(tmp_path / "state" / "events.db", bus)
    await log.open()
    yield bus, log
    await log.close()


async def test_a_burst_of_events_is_one_transaction(opened: tuple[EventBus, EventLog]) -> None:
    bus, log = opened
    assert await log.flush()
    before = commits()
    for n in range(100):
        bus.publish("s", "message", {"n": n})
    assert await log.flush()
    assert commits() - before == 1
    assert [r[0] for r in rows(log.path)] == list(range(1, 101))


async def test_a_stream_sees_an_event_only_once_it_is_on_disk(opened: tuple[EventBus, EventLog]) -> None:
    bus, log = opened
    checked: list[bool] = []

    async def consume() -> None:
        async for event in follow(bus, log, None, None):
            checked.append((event.seq,) in rows(log.path))
            if len(checked) == 20:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    for n in range(20):
        bus.publish(f"s{n % 3}", "message", {"n": n})
    await asyncio.wait_for(task, 30)
    assert checked == [True] * 20


async def test_the_log_file_is_private(opened: tuple[EventBus, EventLog]) -> None:
    bus, log = opened
    bus.publish("s", "session.qr", {"qr": "2@secret-ref"})
    assert await log.flush()
    assert log.path.stat().st_mode & 0o777 == 0o600
    assert log.path.parent.stat().st_mode & 0o777 == 0o700


async def test_retention_prunes_by_count_and_age_but_never_undelivered_rows(
    opened: tuple[EventBus, EventLog]
) -> None:
    bus, log = opened
    log.set_router(lambda events: [OutboxRow("hook", e.seq, "s") for e in events if e.seq in (3, 6, 8)])
    for n in range(10):
        bus.publish("s", "message", {"n": n})
    assert await log.flush()
    await log.write(lambda c: c.execute("UPDATE outbox SET state = 'failed' WHERE seq = 6"))
    await log.write(lambda c: c.execute("UPDATE outbox SET state = 'delivered' WHERE seq = 8"))
    result = await log.write(lambda c: prune(c, max_age=86400, keep=2))
    assert [r[0] for r in rows(log.path)] == [3, 6, 9, 10], "pending (3) and failed (6) rows keep their events"
    assert result.events == 6 and result.deliveries == 1
    await log.write(lambda c: prune(c, max_age=0, keep=1_000_000))
    assert [r[0] for r in rows(log.path)] == [3, 6]


async def test_numbering_goes_on_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    bus = EventBus()
    log = EventLog(path, bus)
    await log.open()
    last = [bus.publish("s", "message", {}) for _ in range(5)][-1]
    await log.close()
    again = EventBus()
    log = EventLog(path, again)
    assert await log.open() == last.seq
    assert again.publish("s", "message", {}).seq == last.seq + 1
    await log.close()


async def test_a_deleted_file_is_replaced_alerted_and_numbering_goes_on(opened: tuple[EventBus, EventLog]) -> None:
    bus, log = opened
    bus.publish("s", "message", {"n": 1})
    assert await log.flush()
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{log.path}{suffix}")
    late = bus.publish("s", "message", {"n": 2})
    assert await log.flush()
    await asyncio.sleep(0.05)
    assert (late.seq,) in rows(log.path)
    alerts = [e.data["alert"] for e in bus.since(0) if e.kind == "alert"]
    assert "event_log_replaced" in alerts


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_holds_events_in_memory_alerts_and_writes_them_when_space_returns(
    small_disk: Path,
) -> None:
    bus = EventBus(capacity=10_000)
    log = EventLog(small_disk / "state" / "events.db", bus)
    await log.open()
    try:
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
        published: list[Event] = []
        for n in range(400):
            published.append(bus.publish("s", "message", {"n": n, "pad": "x" * 1000}))
            if n % 50 == 0:
                await asyncio.sleep(0.01)
        for _ in range(200):
            if not log.healthy:
                break
            await asyncio.sleep(0.02)
        assert not log.healthy, "the disk filled up"  # /healthz says event_log: failing
        alerts = [e for e in bus.since(0) if e.kind == "alert" and e.data["alert"] == "event_log_failing"]
        assert len(alerts) == 1 and "full" in alerts[0].data["message"]
        assert log.held > 0
        on_disk = [r[0] for r in rows(log.path)]
        assert on_disk == list(range(1, len(on_disk) + 1)), "what is on disk is a prefix, in order"
        assert on_disk[-1] < published[-1].seq

        filler.unlink()
        assert await log.flush(60)
        assert log.healthy
        wanted = [e.seq for e in published]
        on_disk = [r[0] for r in rows(log.path) if r[0] in set(wanted)]
        assert on_disk == wanted, "nothing lost, nothing out of order"
        await asyncio.sleep(0.05)
        assert any(e.kind == "alert" and e.data["alert"] == "event_log_recovered" for e in bus.since(0))
    finally:
        await log.close()


async def test_past_the_memory_bound_the_loss_is_counted_and_alerted_with_its_exact_range(small_disk: Path) -> None:
    bus = EventBus(capacity=10_000)
    log = EventLog(small_disk / "state" / "events.db", bus, memory_max=100)
    await log.open()
    lost_before = REGISTRY.get_sample_value("bridge_events_lost_total") or 0.0
    try:
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 16 * 1024))
        async with asyncio.timeout(30):
            while log.healthy:
                bus.publish("s", "message", {"pad": "y" * 1000})
                await asyncio.sleep(0.01)
        for n in range(600):
            bus.publish("s", "message", {"n": n, "pad": "y" * 1000})
        filler.unlink()
        assert await log.flush(60)
        await asyncio.sleep(0.05)
        recovered = [e for e in bus.since(0) if e.kind == "alert" and e.data["alert"] == "event_log_recovered"]
        assert len(recovered) == 1
        ranges = recovered[0].data["lost_ranges"]
        missing = set(range(1, bus.last_seq + 1)) - {r[0] for r in rows(log.path)}
        assert missing == {seq for first, last in ranges for seq in range(first, last + 1)}
        lost = (REGISTRY.get_sample_value("bridge_events_lost_total") or 0.0) - lost_before
        assert len(missing) == lost > 0
        assert any(e.kind == "alert" and e.data["alert"] == "events_lost" for e in bus.since(0))
    finally:
        await log.close()


async def test_close_writes_the_writes_still_queued(tmp_path: Path) -> None:
    bus = EventBus()
    log = EventLog(tmp_path / "events.db", bus)
    await log.open()
    log.set_router(lambda events: [OutboxRow("hook", e.seq, "s") for e in events])
    event = bus.publish("s", "message", {})
    assert await log.flush()
    marking = asyncio.ensure_future(
        log.write(lambda c: c.execute("UPDATE outbox SET state = 'delivered' WHERE seq = ?", (event.seq,)),
                  sync=False)
    )
    await asyncio.sleep(0)
    await log.close()
    assert marking.done() and marking.exception() is None
    assert rows(log.path, "SELECT state FROM outbox") == [("delivered",)]


async def test_a_held_write_with_a_bad_row_is_skipped_and_the_rest_of_its_burst_is_written(
    opened: tuple[EventBus, EventLog],
) -> None:
    bus, log = opened
    assert await log.write(lambda conn: conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"))

    def note(n: int) -> Callable[[sqlite3.Connection], object]:
        return lambda conn: conn.execute("INSERT INTO notes (id, text) VALUES (?, ?)", (n, f"note {n}"))

    log.hold(note(1))
    log.hold(note(1))  # the same key again: a bad row, skipped on its own
    log.hold(note(2))
    bus.publish("s", "message", {"n": 1})
    assert await log.held_written()
    assert await log.flush()
    assert rows(log.path, "SELECT id, text FROM notes ORDER BY id") == [(1, "note 1"), (2, "note 2")]
    assert rows(log.path, "SELECT data FROM events") == [('{"n":1}',)]
    assert log.held_writes == 0


async def test_a_status_alone_waits_briefly_for_company_and_commits_with_the_next_burst(
    opened: tuple[EventBus, EventLog], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus, log = opened
    assert await log.flush()
    monkeypatch.setattr(eventlog_log, "LINGER", 5.0)  # long enough for any machine; the message ends it
    before = commits()
    bus.publish("s", "message.status", {"id": "A", "status": "delivered"})
    await asyncio.sleep(0.05)
    bus.publish("s", "message", {"id": "B"})
    assert await log.flush()
    assert commits() - before == 1
    assert [r[0] for r in rows(log.path, "SELECT kind FROM events ORDER BY seq")][-2:] == ["message.status", "message"]


async def test_a_status_alone_is_committed_after_the_linger_and_a_waiter_ends_it_at_once(
    opened: tuple[EventBus, EventLog], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus, log = opened
    assert await log.flush()
    seen = bus.open_subscription(committed=True)
    bus.publish("s", "message.status", {"id": "A", "status": "delivered"})
    event = await asyncio.wait_for(seen.next(), 10)
    assert event.kind == "message.status"
    monkeypatch.setattr(eventlog_log, "LINGER", 30.0)
    before = commits()
    bus.publish("s", "presence", {"jid": "x"})
    await asyncio.sleep(0.05)
    assert await log.flush(within=10.0)  # a waiter does not wait out the linger
    assert commits() - before == 1
    seen.close()
