"""The message store: rows in the event log's file, written in its bursts, readable after a restart.

Specification: a message's row is committed no later than the `message` event published after it;
pages come newest first and follow a cursor; a status reported after a restart lands on the stored
message, forward-only, with implied steps in its history; a full disk holds rows in memory and
writes them when space returns; retention prunes by age and count; getMessage's content and retry
count come from the file. Real SQLite files, a real tmpfs for the full disk (skipped where mounting
is not allowed); no Node here (the end-to-end tests are in tests/messages/test_store_e2e.py).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.eventlog import log as eventlog_log
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.messages.model import Message, MessageKind, MessageStatus
from bridge.messages.store import MessageRetention, MessageStore, PageCursorUnknown, prune

S = MessageStatus


def text(n: int, *, chat: str = "111@s.whatsapp.net", ts: int = 1_700_000_000, from_me: bool = False,
         session: str = "s1") -> tuple[Message, dict[str, Any]]:
    message = Message(id=f"M{n:04d}", session=session, chat=chat, sender=chat, from_me=from_me,
                      kind=MessageKind.TEXT, timestamp=ts + n, status=S.SENT if from_me else S.DELIVERED,
                      text=f"hello {n}")
    raw = {"key": {"remoteJid": chat, "fromMe": from_me, "id": message.id},
           "message": {"conversation": f"hello {n}"}, "messageTimestamp": ts + n}
    return message, raw


def stored_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql).fetchall())


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[EventBus, EventLog, MessageStore]]:
    bus = EventBus()
    log = EventLog(tmp_path / "state" / "events.db", bus)
    await log.open()
    yield bus, log, MessageStore(bus)
    await log.close()


async def test_a_message_row_is_on_disk_before_its_event_is_visible(
    opened: tuple[EventBus, EventLog, MessageStore],
) -> None:
    bus, log, store = opened
    seen: list[int] = []

    async def watch() -> None:
        async for event in bus.subscribe(committed=True):
            seen.append(len(stored_rows(log.path, f"SELECT 1 FROM messages WHERE id = '{event.data['id']}'")))
            if len(seen) == 20:
                return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    for n in range(20):
        message, raw = text(n)
        store.put(message, raw)
        bus.publish("s1", "message", {"id": message.id})
    await asyncio.wait_for(watcher, 10)
    assert seen == [1] * 20


async def test_pages_are_newest_first_per_chat_and_follow_the_cursor(
    opened: tuple[EventBus, EventLog, MessageStore],
) -> None:
    _, log, store = opened
    for n in range(25):
        store.put(*text(n, chat="111@s.whatsapp.net" if n % 2 else "222@g.us"))
    assert await log.flush()
    first = await store.page("s1", limit=10)
    assert [m.id for m in first] == [f"M{n:04d}" for n in range(24, 14, -1)]
    second = await store.page("s1", before=first[-1].id, limit=10)
    assert [m.id for m in second] == [f"M{n:04d}" for n in range(14, 4, -1)]
    group = await store.page("s1", chat="222@g.us", limit=100)
    assert [m.id for m in group] == [f"M{n:04d}" for n in range(24, -1, -2)]
    by_time = await store.page("s1", before=str(1_700_000_000 + 3), limit=100)
    assert [m.id for m in by_time] == ["M0002", "M0001", "M0000"]
    assert await store.page("other", limit=10) == []
    with pytest.raises(PageCursorUnknown):
        await store.page("s1", before="NOPE")


async def test_a_status_after_a_restart_lands_on_the_stored_message_forward_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.db"
    bus = EventBus()
    log = EventLog(path, bus)
    await log.open()
    message, raw = text(1, from_me=True)
    MessageStore(bus).put(message, raw)
    await log.close()

    bus = EventBus()
    log = EventLog(path, bus)
    await log.open()
    try:
        store = MessageStore(bus)
        assert store.get("s1", message.id) is None, "a new process starts with an empty cache"
        store.report("s1", message.id, S.READ)
        store.report("s1", message.id, S.DELIVERED)  # late: never moves it back
        store.report("s1", message.id, S.READ, participant="333@s.whatsapp.net")
        assert await log.flush()
        stored = await store.stored("s1", message.id)
        assert stored is not None and stored.message.status is S.READ
        steps = [(h.status, h.implied, h.participant) for h in stored.history]
        assert steps == [(S.SENT, False, None), (S.DELIVERED, True, None), (S.READ, False, None),
                         (S.SENT, True, "333@s.whatsapp.net"), (S.DELIVERED, True, "333@s.whatsapp.net"),
                         (S.READ, False, "333@s.whatsapp.net")]
        entry = await store.fetch("s1", message.id)
        assert entry is not None and entry.raw == raw and entry.status is S.READ
        assert entry.statuses["333@s.whatsapp.net"] is S.READ
        assert store.get("s1", message.id) is entry, "fetched entries are cached"
    finally:
        await log.close()


async def test_getmessage_content_and_its_retry_count_come_from_the_file(
    opened: tuple[EventBus, EventLog, MessageStore],
) -> None:
    bus, log, store = opened
    message, raw = text(7, from_me=True)
    store.put(message, raw)
    assert await log.flush()
    fresh = MessageStore(bus)  # as after a restart: nothing cached
    assert await fresh.content_for("s1", "111@s.whatsapp.net", message.id) == ({"conversation": "hello 7"}, 0)
    fresh.count_retry("s1", message.id)
    fresh.count_retry("s1", message.id)
    assert await log.flush()
    assert await fresh.content_for("s1", "111:3@s.whatsapp.net", message.id) == ({"conversation": "hello 7"}, 2)
    assert await fresh.content_for("s1", "999@s.whatsapp.net", message.id) is None, "another chat's key"
    assert await fresh.content_for("s1", "111@s.whatsapp.net", "UNKNOWN") is None


async def test_retention_prunes_by_age_and_by_count_per_session_with_the_history(tmp_path: Path) -> None:
    bus = EventBus()
    log = EventLog(tmp_path / "state" / "events.db", bus)
    await log.open()
    try:
        store = MessageStore(bus, retention=MessageRetention(max_age=3600.0, keep=5))
        for n in range(8):
            store.put(*text(n))
        store.put(*text(100, session="s2"))
        assert await log.flush()
        await log.prune()  # the store registered its retention with the log
        left = stored_rows(log.path, "SELECT session, id FROM messages ORDER BY session, id")
        assert left == [("s1", f"M{n:04d}") for n in range(3, 8)] + [("s2", "M0100")]
        assert stored_rows(log.path, "SELECT count(*) FROM message_status") == [(6,)]
        pruned = await log.write(lambda conn: prune(conn, max_age=3600.0, keep=100, now=10**10))
        assert pruned == 6
        assert stored_rows(log.path, "SELECT count(*) FROM messages") == [(0,)]
    finally:
        await log.close()


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


async def test_a_full_disk_holds_messages_in_memory_and_writes_them_when_space_returns(small_disk: Path) -> None:
    bus = EventBus(capacity=10_000)
    log = EventLog(small_disk / "state" / "events.db", bus)
    await log.open()
    try:
        store = MessageStore(bus)
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
        ids = []
        for n in range(200):
            message, raw = text(n)
            raw["message"]["conversation"] = "x" * 500
            store.put(message, raw)
            bus.publish("s1", "message", {"id": message.id})
            ids.append(message.id)
            if n % 50 == 0:
                await asyncio.sleep(0.01)
        for _ in range(200):
            if not log.healthy:
                break
            await asyncio.sleep(0.02)
        assert not log.healthy, "the disk filled up"
        assert log.held_writes > 0
        assert len(await store.page("s1", limit=200)) < 200

        filler.unlink()
        assert await log.flush(60)
        assert log.healthy and log.held_writes == 0
        stored = [m.id for m in await store.page("s1", limit=200)]
        stored += [m.id for m in await store.page("s1", before=stored[-1], limit=200)]
        assert sorted(stored) == ids, "every message written once space returned"
    finally:
        await log.close()


async def test_a_message_stored_before_a_restart_is_not_new_when_whatsapp_delivers_it_again(tmp_path: Path) -> None:
    """After a crash the server delivers again what the device had not acknowledged; the store knows
    the ids stored before (the log read them when it opened), so the desk publishes no second
    `message` event for them."""
    path = tmp_path / "state" / "events.db"
    bus = EventBus()
    log = EventLog(path, bus)
    await log.open()
    store = MessageStore(bus)
    first, raw = text(1)
    assert store.put(first, raw)[1] is True
    assert await store.written()
    await log.close()

    bus = EventBus()
    log = EventLog(path, bus)
    await log.open()
    try:
        store = MessageStore(bus)
        assert store.known("s1", first.id)
        assert store.put(first, raw)[1] is False, "a redelivered copy counted as a new message"
        assert store.put(*text(2))[1] is True
        assert not store.known("s2", first.id)
        assert store.put(*text(1, session="s2"))[1] is True, "another session's message with the same id"
    finally:
        await log.close()


async def test_a_send_waits_for_its_row_and_sent_status_not_for_writes_queued_after_them(
    opened: tuple[EventBus, EventLog, MessageStore], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus, log, store = opened
    monkeypatch.setattr(eventlog_log, "LINGER", 30.0)  # a status-only burst would wait this long
    message, raw = text(1, from_me=True)
    entry, _ = store.put(msgspec.structs.replace(message, status=S.PENDING), raw)
    store.set_status(entry, [(S.SENT, False)])
    bus.publish("s1", "message", {"id": message.id})
    assert await store.written(entry=entry)
    store.set_status(entry, [(S.DELIVERED, False)])
    bus.publish("s1", "message.status", {"id": message.id, "status": "delivered"})
    assert await store.written(entry=entry, within=5.0)  # already written: the lingering receipt is not awaited
    assert log.held_writes == 1
    assert stored_rows(log.path, "SELECT status FROM messages") == [("sent",)]
    assert await store.written(within=5.0)  # without `entry`: everything so far, the receipt too
    assert stored_rows(log.path, "SELECT status FROM messages") == [("delivered",)]


async def test_a_send_waiting_while_its_row_commits_leaves_a_receipt_queued_meanwhile_to_its_linger(
    opened: tuple[EventBus, EventLog, MessageStore], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delivery receipt that arrives while the send's own row commits waits for the next burst
    (up to LINGER), even though the send's answer waits for that commit: the waiter is covered by
    the burst being written, so it must not make the next one urgent (a transaction per receipt)."""
    bus, log, store = opened
    monkeypatch.setattr(eventlog_log, "LINGER", 30.0)
    in_commit, release = threading.Event(), threading.Event()

    def slow_commit(conn: sqlite3.Connection) -> None:
        in_commit.set()
        release.wait(10)

    message, raw = text(1, from_me=True)
    entry, _ = store.put(msgspec.structs.replace(message, status=S.PENDING), raw)
    store.set_status(entry, [(S.SENT, False)])
    log.hold(slow_commit)
    bus.publish("s1", "message", {"id": message.id})
    assert await asyncio.to_thread(in_commit.wait, 10)
    answer = asyncio.create_task(store.written(entry=entry, within=10.0))
    await asyncio.sleep(0.01)  # the waiter is waiting on the burst being written
    store.set_status(entry, [(S.DELIVERED, False)])
    bus.publish("s1", "message.status", {"id": message.id, "status": "delivered"})
    release.set()
    assert await answer
    await asyncio.sleep(0.3)  # the writer would have committed the receipt at once before
    assert log.held_writes == 1 and log.held == 1, "the receipt got a transaction of its own"
    assert stored_rows(log.path, "SELECT status FROM messages") == [("sent",)]
    assert await log.flush(within=5.0)  # a waiter for the receipt ends its linger at once
    assert stored_rows(log.path, "SELECT status FROM messages") == [("delivered",)]
