"""Answering Baileys' `getMessage` (the IPC request `message.get`) from the message store.

Baileys asks when a contact's retry receipt says it could not decrypt a message this session sent
(it re-encrypts and sends the same content again) and when a poll vote must be decrypted with its
poll's secret. Without an answer the contact sees "waiting for this message" for ever.

Why a durable ask counter (`MAX_ASKS`): Baileys counts its re-sends only per socket and in memory
(`msgRetryCounterCache`, 5 per message and device, gone with a restart), so a peer that keeps
sending retry receipts across reconnects could make the bridge re-send for ever. The store counts
every ask in its file; past `MAX_ASKS` the answer is null (Baileys then sends nothing) and a warning
is logged once per message.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.events import EventBus
from bridge.ipc.messaging import GetMessageArgs
from bridge.messages.store import MessageStore

log = logging.getLogger(__name__)
MAX_ASKS = 20


class GetMessageAnswer:
    """The `message.get` handler of one bus's message store (found when asked: the store is the
    message desk's, made after the runtimes)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def __call__(self, session: str, args: GetMessageArgs) -> dict[str, Any] | None:
        store = MessageStore.of(self.bus)
        if store is None:
            return None
        found = await store.content_for(session, args.key.remoteJid, args.key.id)
        if found is None:
            log.info("session %s: getMessage for %s: not in the message store", session, args.key.id)
            return None
        content, asked = found
        if asked >= MAX_ASKS:
            if asked == MAX_ASKS:
                log.warning("session %s: message %s was asked for %d times (retry receipts); no longer answered",
                            session, args.key.id, MAX_ASKS)
                store.count_retry(session, args.key.id)
            return None
        store.count_retry(session, args.key.id)
        return content
