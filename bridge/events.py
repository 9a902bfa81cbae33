"""The in-process event bus: sessions, runtimes and the monitor publish; SSE, webhooks and alert
sinks consume.

Publishing never blocks and never fails: a slow subscriber loses the oldest events of its own
queue (and is told so by a gap in `seq`) rather than slowing a session down. The bus keeps the
last `capacity` events so an SSE client can resume with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "critical"]


class Event(msgspec.Struct, frozen=True):
    """One thing that happened. `kind` examples: state, qr, pairing_code, message, alert, incident."""

    seq: int
    ts: float
    session: str | None
    kind: str
    data: dict[str, Any]


class EventBus:
    """Fan-out of events with a bounded history for resume."""

    def __init__(self, capacity: int = 1000, subscriber_queue: int = 1000) -> None:
        self._history: deque[Event] = deque(maxlen=capacity)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._subscriber_queue = subscriber_queue
        self._seq = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, session: str | None, kind: str, data: dict[str, Any] | None = None) -> Event:
        self._seq += 1
        event = Event(seq=self._seq, ts=time.time(), session=session, kind=kind, data=dict(data or {}))
        self._history.append(event)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
        return event

    def alert(self, session: str | None, kind: str, severity: Severity, message: str, **extra: Any) -> Event:
        """Publish an alert event; the monitor's alerter routes it to sinks (log, Telegram)."""
        return self.publish(
            session, "alert", {"alert": kind, "severity": severity, "message": message, **extra}
        )

    def since(self, seq: int, session: str | None = None) -> list[Event]:
        """Buffered events after `seq` (optionally for one session), oldest first."""
        return [e for e in self._history if e.seq > seq and (session is None or e.session == session)]

    async def subscribe(self, session: str | None = None, after: int | None = None) -> AsyncIterator[Event]:
        """Yield buffered events after `after` (if given), then live ones, until cancelled."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._subscriber_queue)
        self._subscribers.add(queue)
        try:
            last = 0
            if after is not None:
                for event in self.since(after, session):
                    last = event.seq
                    yield event
            while True:
                event = await queue.get()
                if event.seq <= last or (session is not None and event.session != session):
                    continue
                yield event
        finally:
            self._subscribers.discard(queue)
