"""The in-process event bus, the event kinds, and the one JSON form of an event.

Sessions, runtimes and the monitor publish; in-process consumers (the monitor's health view, the
alerter) see each event at once; SSE streams and webhooks see it only once it is durable
(`subscribe(committed=True)`): with an event log attached (`attach`), publishing hands the event
to the log, and the log calls `committed()` after its transaction, so every event a client sees
already has its sequence number on disk. Without a log, published = committed.

Publishing never blocks and never fails: a slow subscriber loses the oldest events of its own
queue (and is told so by a gap in `seq`) rather than slowing a session down. The bus keeps the
last `capacity` events for in-process `since()`.

Event kinds are the dotted nouns of docs/architecture.md (`EventKind`). Publishers that still
use the first names (`state`, `qr`, `pairing_code`, `reconnect`, `runtime`) keep working:
`canonical_kind` maps them, and everything that leaves the process (SSE, webhooks, the log)
uses the canonical name.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal, Protocol

import msgspec

Severity = Literal["info", "warning", "critical"]


class EventKind(enum.StrEnum):
    SESSION_STATE = "session.state"
    SESSION_QR = "session.qr"
    SESSION_PAIRING_CODE = "session.pairing_code"
    SESSION_RECONNECT = "session.reconnect"
    MESSAGE = "message"
    MESSAGE_STATUS = "message.status"
    PRESENCE = "presence"
    GROUP_UPDATE = "group.update"
    GROUP_PARTICIPANTS = "group.participants"
    ALERT = "alert"
    INCIDENT = "incident"
    SNAPSHOT = "snapshot"
    RUNTIME_STATE = "runtime.state"


LEGACY_KINDS: dict[str, EventKind] = {
    "state": EventKind.SESSION_STATE,
    "qr": EventKind.SESSION_QR,
    "pairing_code": EventKind.SESSION_PAIRING_CODE,
    "reconnect": EventKind.SESSION_RECONNECT,
    "runtime": EventKind.RUNTIME_STATE,
}


def canonical_kind(kind: str) -> str:
    """The dotted name of `kind` (first names mapped); an unknown kind is passed through as is."""
    legacy = LEGACY_KINDS.get(kind)
    return legacy.value if legacy is not None else kind


def parse_kind(name: str) -> EventKind:
    """A kind a client asked for (dotted or first name); ValueError naming it if unknown."""
    legacy = LEGACY_KINDS.get(name)
    if legacy is not None:
        return legacy
    try:
        return EventKind(name)
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise ValueError(f"unknown event kind {name!r}; known kinds: {known}") from None


class Event(msgspec.Struct, frozen=True):
    """One thing that happened. `kind` is an `EventKind` value (or a first name, see above)."""

    seq: int
    ts: float
    session: str | None
    kind: str
    data: dict[str, Any]


class _Wire(msgspec.Struct, omit_defaults=True):
    seq: int
    ts: float
    session: str | None
    kind: str
    data: dict[str, Any]
    sandbox: bool = False


_encoder = msgspec.json.Encoder(enc_hook=str)
_sandbox = False


def mark_sandbox(on: bool) -> None:
    """Label every event this process writes out with `"sandbox": true` (or stop doing so).

    A property of the process, not of one event: a sandbox bridge (bridge.sandbox) talks to the
    bundled simulator only, and its events must never pass for production ones in a shared
    webhook receiver or log pipeline.
    """
    global _sandbox
    _sandbox = on


def event_json(event: Event) -> bytes:
    """The one JSON form of an event: SSE `data:`, webhook body and event-log row all use it.

    `{"seq", "ts", "session", "kind", "data"}` with the canonical kind, plus `"sandbox": true` in a
    sandbox bridge (`mark_sandbox`); values JSON cannot hold are written as strings.
    """
    return _encoder.encode(
        _Wire(event.seq, event.ts, event.session, canonical_kind(event.kind), event.data, _sandbox)
    )


def data_json(data: dict[str, Any]) -> bytes:
    """An event's `data` alone, encoded the way `event_json` encodes it."""
    return _encoder.encode(data)


class EventSink(Protocol):
    """Where published events go to become durable (the event log)."""

    def append(self, event: Event) -> None: ...


class Subscription:
    """One subscriber's bounded queue, registered from the moment it is created (so a caller can
    subscribe first and then read the past without missing what happens in between)."""

    __slots__ = ("_bus", "committed", "dropped", "queue", "session")

    def __init__(self, bus: EventBus, session: str | None, size: int, committed: bool) -> None:
        self._bus = bus
        self.session = session
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.committed = committed
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.session is not None and event.session != self.session:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def next(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subscribers.discard(self)


class EventBus:
    """Fan-out of events with a bounded history for in-process resume."""

    def __init__(self, capacity: int = 1000, subscriber_queue: int = 1000) -> None:
        self._history: deque[Event] = deque(maxlen=capacity)
        self._subscribers: set[Subscription] = set()
        self._subscriber_queue = subscriber_queue
        self._seq = 0
        self._committed_seq = 0
        self._sink: EventSink | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def committed_seq(self) -> int:
        """The newest event SSE and webhooks may see (everything up to it is durable)."""
        return self._committed_seq

    def attach(self, sink: EventSink, last_seq: int) -> None:
        """Hand events to `sink` from now on, numbering after `last_seq` (the log's newest).

        Attach before anything publishes (bridge.app does, before sessions exist): events
        published earlier were treated as committed without a log and are not handed over.
        """
        self._sink = sink
        self._seq = max(self._seq, last_seq)
        self._committed_seq = max(self._committed_seq, last_seq)

    def detach(self) -> None:
        """Stop handing events to the sink (it is closing); later events stay in memory only."""
        self._sink = None

    def publish(self, session: str | None, kind: str, data: dict[str, Any] | None = None) -> Event:
        self._seq += 1
        event = Event(seq=self._seq, ts=time.time(), session=session, kind=kind, data=dict(data or {}))
        self._history.append(event)
        for sub in self._subscribers:
            if not sub.committed:
                sub.offer(event)
        if self._sink is not None:
            self._sink.append(event)
        else:
            self.committed([event])
        return event

    def committed(self, events: Iterable[Event]) -> None:
        """Called by the sink once `events` are durable: committed subscribers see them now."""
        for event in events:
            self._committed_seq = max(self._committed_seq, event.seq)
            for sub in self._subscribers:
                if sub.committed:
                    sub.offer(event)

    def alert(self, session: str | None, kind: str, severity: Severity, message: str, **extra: Any) -> Event:
        """Publish an alert event; the monitor's alerter routes it to sinks (log, Telegram)."""
        return self.publish(
            session, EventKind.ALERT, {"alert": kind, "severity": severity, "message": message, **extra}
        )

    def open_subscription(self, session: str | None = None, *, committed: bool = False) -> Subscription:
        """Register a subscriber now; `close()` it when done (or use `subscribe`)."""
        sub = Subscription(self, session, self._subscriber_queue, committed)
        self._subscribers.add(sub)
        return sub

    def since(self, seq: int, session: str | None = None) -> list[Event]:
        """Buffered events after `seq` (optionally for one session), oldest first."""
        return [e for e in self._history if e.seq > seq and (session is None or e.session == session)]

    async def subscribe(
        self, session: str | None = None, after: int | None = None, *, committed: bool = False
    ) -> AsyncIterator[Event]:
        """Yield buffered events after `after` (if given), then live ones, until cancelled.

        `committed=True` yields only durable events and no buffered ones (the event log serves
        the past from disk; see bridge.eventlog.stream).
        """
        sub = self.open_subscription(session, committed=committed)
        try:
            last = 0
            if after is not None and not committed:
                for event in self.since(after, session):
                    last = event.seq
                    yield event
            while True:
                event = await sub.next()
                if event.seq > last:
                    yield event
        finally:
            sub.close()
