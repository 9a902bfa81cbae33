"""Answering Baileys' `getMessage` (the IPC request `message.get`) from the message store.

Baileys asks when a contact's retry receipt says it could not decrypt a message this session sent
(it re-encrypts and sends the same content again) and when a poll vote must be decrypted with its
poll's secret. Without an answer the contact sees "waiting for this message" for ever.

Why a durable ask counter (`MAX_ASKS`): Baileys counts its re-sends only per socket and in memory
(`msgRetryCounterCache`, 5 per message and device, gone with a restart), so a peer that keeps
sending retry receipts across reconnects could make the bridge re-send for ever. The store counts
every ask in its file; past `MAX_ASKS` the answer is null (Baileys then sends nothing) and a warning
is logged once per message. Asks for a message this session *received* (`fromMe` false) are not
counted: they come from the runtime, for a copy WhatsApp delivered again after a crash whose keys
were already used (the stored content stands in for the plaintext), never from a peer.

`message.durable` is answered here too (same store): once no event of the session is held back
(`MessageDesk.settled`: a media download with auto-download on, a poll vote) and the event log has
written everything published so far, so the runtime lets Baileys commit a received message's keys
and acknowledge it only after its event is on disk (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.ipc.messaging import GetMessageArgs, MessageDurableArgs, MessageDurableResult
from bridge.messages.desk import MessageDesk
from bridge.messages.store import MessageStore

log = logging.getLogger(__name__)
MAX_ASKS = 20
DURABLE_WITHIN = 10.0


class GetMessageAnswer:
    """The `message.get` handler of one bus's message store (found when asked: the store is the
    message desk's, made after the runtimes)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def __call__(self, session: str, args: GetMessageArgs | MessageDurableArgs) -> Any:
        if isinstance(args, MessageDurableArgs):
            return await self.durable(session, args.id)
        store = MessageStore.of(self.bus)
        if store is None:
            return None
        found = await store.content_for(session, args.key.remoteJid, args.key.id)
        if found is None:
            log.info("session %s: getMessage for %s: not in the message store", session, args.key.id)
            return None
        content, asked = found
        if not args.key.fromMe:
            return content
        if asked >= MAX_ASKS:
            if asked == MAX_ASKS:
                log.warning("session %s: message %s was asked for %d times (retry receipts); no longer answered",
                            session, args.key.id, MAX_ASKS)
                store.count_retry(session, args.key.id)
            return None
        store.count_retry(session, args.key.id)
        return content

    async def durable(self, session: str, message_id: str) -> MessageDurableResult:
        """Wait until the session's held events are published and what was published so far (the
        message's event and row) is in the file; False after `DURABLE_WITHIN` s (the runtime goes on:
        a slow download must not stall the session for ever)."""
        eventlog = EventLog.of(self.bus)
        if eventlog is None:
            return MessageDurableResult(False)
        if not eventlog.healthy:
            log.warning("session %s: message %s is held in memory: the event log is failing", session, message_id)
            return MessageDurableResult(False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DURABLE_WITHIN
        desk = MessageDesk.of(self.bus)
        if desk is not None and not await desk.settled(session, DURABLE_WITHIN):
            log.warning("session %s: message %s acknowledged while its event is still held (a download "
                        "slower than %g s)", session, message_id, DURABLE_WITHIN)
            return MessageDurableResult(False)
        return MessageDurableResult(await eventlog.flush(max(0.1, deadline - loop.time())))
