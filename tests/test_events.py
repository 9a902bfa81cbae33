"""The event bus never blocks a publisher, lets a subscriber resume after a known event, shows
committed subscribers only what the event log has written, and has one JSON form with dotted kinds."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.events import Event, EventBus, EventKind, canonical_kind, event_json, parse_kind


async def test_subscriber_resumes_after_last_event_id_then_gets_live_events() -> None:
    bus = EventBus(capacity=10)
    for n in range(5):
        bus.publish("a", "state", {"n": n})
    seen: list[int] = []

    async def consume() -> None:
        async for event in bus.subscribe(after=3):
            seen.append(event.data["n"])
            if len(seen) == 3:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    bus.publish("a", "state", {"n": 5})
    await asyncio.wait_for(task, 5)
    assert seen == [3, 4, 5]


async def test_history_is_bounded_and_filters_by_session() -> None:
    bus = EventBus(capacity=3)
    for n in range(6):
        bus.publish("a" if n % 2 else "b", "state", {"n": n})
    assert [e.data["n"] for e in bus.since(0)] == [3, 4, 5]
    assert [e.data["n"] for e in bus.since(0, "a")] == [3, 5]


async def test_slow_subscriber_drops_its_oldest_events_instead_of_blocking_the_publisher() -> None:
    bus = EventBus(capacity=100, subscriber_queue=2)
    received: list[int] = []
    gen = bus.subscribe()
    first = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0)
    for n in range(10):
        bus.publish(None, "tick", {"n": n})  # never awaits, never raises
    received.append((await first).data["n"])
    received.append((await gen.__anext__()).data["n"])
    await gen.aclose()
    assert received == [8, 9]  # the newest survive; the gap in seq tells the consumer it lagged
    assert bus.last_seq == 10


async def test_alert_is_an_event_with_severity() -> None:
    bus = EventBus()
    event = bus.alert("t1", "logged_out", "critical", "session t1 was logged out", reason=401)
    assert event.kind == "alert"
    assert event.data == {"alert": "logged_out", "severity": "critical", "message": "session t1 was logged out",
                          "reason": 401}


class HeldSink:
    """A sink that commits only when told (what the event log does after its transaction)."""

    def __init__(self) -> None:
        self.held: list[Event] = []

    def append(self, event: Event) -> None:
        self.held.append(event)


async def test_committed_subscribers_see_an_event_only_after_the_sink_committed_it() -> None:
    bus = EventBus()
    sink = HeldSink()
    bus.attach(sink, last_seq=41)
    live = bus.open_subscription()
    durable = bus.open_subscription(committed=True)
    event = bus.publish("a", "message", {"n": 1})
    assert event.seq == 42, "numbering continues after the log's newest event"
    assert (await live.next()) is event, "in-process consumers see it at once"
    assert durable.queue.empty() and bus.committed_seq == 41
    bus.committed(sink.held)
    assert (await durable.next()) is event and bus.committed_seq == 42
    live.close()
    durable.close()


def test_event_json_is_the_one_wire_form_with_dotted_kinds() -> None:
    event = Event(seq=7, ts=1.5, session="s", kind="state", data={"state": "open", "odd": object})
    body = json.loads(event_json(event))
    assert body["kind"] == "session.state" and body["seq"] == 7 and body["data"]["state"] == "open"
    assert isinstance(body["data"]["odd"], str)
    assert canonical_kind("pairing_code") == EventKind.SESSION_PAIRING_CODE
    assert parse_kind("qr") is EventKind.SESSION_QR
    with pytest.raises(ValueError, match=r"'\.\./x'"):
        parse_kind("../x")
