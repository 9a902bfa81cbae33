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
from typing import Any

import msgspec

from bridge.events import EventBus
from bridge.ipc import messaging as ipc
from bridge.messages.desk import MessageDesk
from bridge.messages.model import Message, MessageKind
from bridge.messages.store import MessageRetention
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
