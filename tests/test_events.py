"""The event bus never blocks a publisher and lets a subscriber resume after a known event."""

from __future__ import annotations

import asyncio

from bridge.events import EventBus


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
