"""The seam between a node's own event log and a log shared by several nodes (cluster mode).

Why a seam and not a second `EventLog`: the bus numbers events synchronously when they are
published, and the message store's rows commit in the same SQLite transaction as their events
(a client that saw a `message` event can always GET the message). So every node keeps its own
log as the first durable write, and a `SharedLog` (bridge/cluster/events.py) copies each
committed burst into the shared store, numbering it there, and feeds the bus's committed stream
(SSE) with the shared numbering. `EventLog.share` composes the two; without it nothing changes.

The message store's rows ride the same relay: a burst's `message` and `message.status` events name
the rows it touched, and the relay copies them as they are in the file then (`SharedMessages`), so
the node that owns a tenant next finds messages another node received (`MessageStore` falls back
to `SharedLog.messages()` on a local miss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec

from bridge.events import Event

if TYPE_CHECKING:
    from bridge.eventlog.outbox import OutboxStore
    from bridge.webhooks.config import ConfigStore


class SharedMessage(msgspec.Struct, frozen=True):
    """A message row as another node stored it: the columns of the file's `messages` row (`data` the
    normalized message's JSON, `raw` the WAMessage's), with participants' statuses and the history
    (`(participant, status, implied, at)`, oldest first)."""

    session: str
    id: str
    chat: str
    ts: int
    stored_at: float
    status: str
    data: str
    raw: str
    retries: int
    statuses: dict[str, str]
    history: list[tuple[str, str, bool, float]]


class SharedMessages(Protocol):
    """The message rows every node copied (read on a local miss). Calls raise when the shared store
    cannot be read; the message store turns that into "unknown" with a log line."""

    async def message(self, session: str, message_id: str) -> SharedMessage | None:
        """The row of `message_id` in `session`, or None."""
        ...

    async def page(self, session: str, chat: str | None, older_than: tuple[int, float, str] | None,
                   before_ts: int | None, limit: int) -> list[SharedMessage]:
        """Up to `limit` rows of `session` (in `chat`), newest first (ts, stored_at, id), older than
        `older_than` (an anchor's ts, stored_at, id) or than the Unix second `before_ts`."""
        ...


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

    def messages(self) -> SharedMessages | None:
        """The shared message rows (None: messages stay per node)."""
        ...

    async def close(self, within: float) -> None:
        """Copy what the node's log still holds (bounded by `within` s), then stop following."""
        ...
