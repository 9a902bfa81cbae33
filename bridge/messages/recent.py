"""`RecentMessages`: the messages each session sent or received lately, in memory, bounded.

The message store's cache (`bridge.messages.store.MessageStore`): it answers the desk's
synchronous questions about recent messages (does it exist, is it ours, how old, its Baileys key
and content for quoting and forwarding, its latest status) without I/O. The store's file is the
source of truth; an entry evicted here (beyond `per_session`) or lost with a restart is loaded
back from the file when asked for.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bridge.messages.model import Message, MessageStatus

DEFAULT_PER_SESSION = 5_000


@dataclass
class Entry:
    """One message: the model, Baileys' WAMessage JSON (key + content), and statuses so far.

    `statuses` is keyed by participant ("" for the message as a whole; a group message has one
    per member who sent a receipt)."""

    message: Message
    raw: dict[str, Any]
    statuses: dict[str, MessageStatus] = field(default_factory=dict)
    sent_write: int = 0
    """The event log's held-write number (`EventLog.hold`) of the write that stores the row or its
    `sent` status, whichever came later: what a send's answer waits for (`MessageStore.written`)."""

    @property
    def status(self) -> MessageStatus:
        return self.statuses.get("", self.message.status)


class RecentMessages:
    def __init__(self, per_session: int = DEFAULT_PER_SESSION) -> None:
        self.per_session = per_session
        self._by_session: dict[str, OrderedDict[str, Entry]] = {}

    def put(self, message: Message, raw: dict[str, Any]) -> tuple[Entry, bool]:
        """Record `message`; returns its entry and whether it is new (a repeat keeps the first
        record's statuses, so a redelivered message cannot move its status back)."""
        entries = self._by_session.setdefault(message.session, OrderedDict())
        existing = entries.get(message.id)
        if existing is not None:
            return existing, False
        entry = Entry(message, raw, {"": message.status})
        entries[message.id] = entry
        while len(entries) > self.per_session:
            entries.popitem(last=False)
        return entry, True

    def get(self, session: str, message_id: str) -> Entry | None:
        entries = self._by_session.get(session)
        return entries.get(message_id) if entries is not None else None

    def set_status(self, entry: Entry, status: MessageStatus, participant: str = "") -> None:
        entry.statuses[participant] = status
        if not participant:
            entry.message = msgspec.structs.replace(entry.message, status=status)

    def forget(self, session: str) -> None:
        self._by_session.pop(session, None)
