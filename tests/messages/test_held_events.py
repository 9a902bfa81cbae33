"""A held message event (auto-download, `MessageDesk.prefetcher`) keeps the session's order.

Specification: while a received media message's event waits for its file, every later event of
the same session (messages, statuses, presence) waits behind it and comes out in arrival order;
another session's events are not held up; `drain()` publishes what is held (the message without
`media.url`) and cancels the wait. Real Baileys JSON (tests/messages/baileys_json), a media
message derived from a captured text message.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.ipc import messaging as ipc
from bridge.messages.desk import MessageDesk
from bridge.messages.model import Message, MessageKind
from bridge.messages.store import MessageRetention
from bridge.messages.store_getmessage import GetMessageAnswer
from tests.messages.test_incoming import ME, incoming


class Port:
    def require_open(self, session: str) -> None:
        return None

    def me(self, session: str) -> str | None:
        return ME

    async def call(self, session: str, cmd: str, args: dict[str, Any]) -> Any:
        raise AssertionError("nothing here calls the runtime")

    def retention(self) -> MessageRetention:
        return MessageRetention()


class Gate:
    """A prefetcher that holds every media message until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked: list[str] = []

    def wants(self, message: Message) -> bool:
        return message.kind is MessageKind.IMAGE

    async def fetch(self, session: str, message: Message) -> Message:
        self.asked.append(message.id)
        await self.release.wait()
        assert message.media is not None
        return msgspec.structs.replace(message, media=msgspec.structs.replace(message.media, url="/fetched"))


def text(message_id: str) -> dict[str, Any]:
    wa = incoming("conversation")
    wa["key"]["id"] = message_id
    return wa


def image(message_id: str) -> dict[str, Any]:
    wa = text(message_id)
    wa["message"] = {"imageMessage": {"mimetype": "image/jpeg", "fileLength": "1200", "caption": "held"}}
    return copy.deepcopy(wa)


def message_events(bus: EventBus) -> list[tuple[str | None, str, str | None]]:
    return [(e.session, e.data["id"], (e.data.get("media") or {}).get("url"))
            for e in bus.since(0) if e.kind == "message"]


async def test_a_held_media_event_keeps_its_place_and_others_wait_behind_it() -> None:
    bus = EventBus(100)
    desk = MessageDesk(bus, Port())
    gate = Gate()
    desk.prefetchers.append(gate)
    desk.on_runtime_event("a", "messages.upsert", ipc.UpsertData(type="notify", messages=[image("IMG1"), text("TXT1")]))
    desk.on_runtime_event("b", "messages.upsert", ipc.UpsertData(type="notify", messages=[text("OTHER")]))
    await asyncio.sleep(0)
    assert message_events(bus) == [("b", "OTHER", None)], "session b is not held up by session a"
    desk.on_runtime_event("a", "messages.upsert", ipc.UpsertData(type="notify", messages=[text("TXT2")]))
    gate.release.set()
    await desk.drain(cancel=False)
    assert message_events(bus) == [("b", "OTHER", None), ("a", "IMG1", "/fetched"), ("a", "TXT1", None),
                                   ("a", "TXT2", None)]
    assert gate.asked == ["IMG1"]


async def test_drain_publishes_what_is_held_without_a_url() -> None:
    bus = EventBus(100)
    desk = MessageDesk(bus, Port())
    desk.prefetchers.append(Gate())
    desk.on_runtime_event("a", "messages.upsert", ipc.UpsertData(type="notify", messages=[image("IMG2"), text("TXT3")]))
    await asyncio.sleep(0)
    assert message_events(bus) == []
    await desk.drain()
    assert message_events(bus) == [("a", "IMG2", None), ("a", "TXT3", None)]


async def test_message_durable_waits_for_the_held_event_so_no_row_is_acknowledged_without_its_event(
    tmp_path: Path,
) -> None:
    """The runtime's `message.durable` for a media message (and for a text queued behind it) is
    answered only once the held event is published and in the event log's file."""
    bus = EventBus(100)
    eventlog = EventLog(tmp_path / "state" / "events.db", bus)
    await eventlog.open()
    try:
        desk = MessageDesk(bus, Port())
        gate = Gate()
        desk.prefetchers.append(gate)
        answer = GetMessageAnswer(bus)
        desk.on_runtime_event("a", "messages.upsert", ipc.UpsertData(type="notify", messages=[image("IMG3")]))
        image_durable = asyncio.ensure_future(answer.durable("a", "IMG3"))
        desk.on_runtime_event("a", "messages.upsert", ipc.UpsertData(type="notify", messages=[text("TXT4")]))
        text_durable = asyncio.ensure_future(answer.durable("a", "TXT4"))
        desk.on_runtime_event("b", "messages.upsert", ipc.UpsertData(type="notify", messages=[text("OTHER2")]))
        assert (await answer.durable("b", "OTHER2")).durable, "another session is not held up"
        await asyncio.sleep(0.3)
        assert not image_durable.done() and not text_durable.done(), "acknowledged while the event was held"

        gate.release.set()
        assert (await image_durable).durable and (await text_durable).durable

        def message_ids(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT data FROM events WHERE kind = 'message' ORDER BY seq").fetchall()
            return [json.loads(row[0])["id"] for row in rows]

        assert await eventlog.read(message_ids) == ["OTHER2", "IMG3", "TXT4"]
    finally:
        await desk.drain()
        await eventlog.close()
