"""The seam between a node's own event log and a log shared by several nodes (cluster mode).

Why a seam and not a second `EventLog`: the bus numbers events synchronously when they are
published, and the message store's rows commit in the same SQLite transaction as their events
(a client that saw a `message` event can always GET the message). So every node keeps its own
log as the first durable write, and a `SharedLog` (bridge/cluster/events.py) copies each
committed burst into the shared store, numbering it there, and feeds the bus's committed stream
(SSE) with the shared numbering. `EventLog.share` composes the two; without it nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from bridge.events import Event

if TYPE_CHECKING:
    from bridge.eventlog.outbox import OutboxStore
    from bridge.webhooks.config import ConfigStore


class SharedLog(Protocol):
    """What `EventLog`, `bridge.eventlog.stream` and the webhook dispatcher need from a shared log."""

    @property
    def epoch(self) -> str:
        """The shared log's random id, part of every webhook-id (`msg_<epoch>_<seq>`)."""
        ...

    def local_committed(self, events: Sequence[Event]) -> None:
        """These events are now durable in the node's own log: copy them (never blocks)."""
        ...

    async def flush(self, within: float) -> bool:
        """Wait until every event committed so far is in the shared log; False after `within` s."""
        ...

    async def events_after(self, after: int, session: str | None, limit: int) -> list[Event]:
        """Up to `limit` shared events with seq > `after` (of one session, if given), oldest first."""
        ...

    async def oldest_seq(self) -> int:
        """The oldest shared seq still kept (0 when empty)."""
        ...

    def webhooks(self, local: ConfigStore) -> tuple[OutboxStore, ConfigStore]:
        """The shared outbox and webhook configs; `local` (this node's file) is offered for import."""
        ...

    async def close(self, within: float) -> None:
        """Copy what the node's log still holds (bounded by `within` s), then stop following."""
        ...
