"""`MessageDesk`: every session's messages, both ways, in one place.

Inbound, it takes the runtime's messaging events (`messages.upsert`, `messages.update`,
`message-receipt.update`, `presence.update`), normalises them and publishes `message`,
`message.status` and `presence` events. Outbound, it plans each send (`bridge.messages.outgoing`),
makes sure a phone number is on WhatsApp before the first message to it, calls the runtime, and
reports `sent` once the server acknowledged. Chat actions (read, presence, check numbers,
profile) are thin: validate, call, shape the answer.

It knows sessions only through `SessionPort` (whether one is open, its own JID, a runtime call),
so it holds no reference to the session machinery and the manager stays as it was.

Every message is recorded in the `MessageStore` (durable, in the event log's file) before its
event is published; what a send, read receipt or status refers to is looked up there, so it works
across bridge restarts.

Status events of one message come in order and once each (`bridge.messages.status.advance`);
the `message` event of a message comes before its first status event, because Node forwards a
sent message and its server ack together (`messages.upsert` then `messages.update` status 2, in
one write) the moment the ack arrives. That is usually while Baileys still commits the message's
Signal keys, so the message's row and `sent` status are written meanwhile and `send`, which
answers only once they are in the file, rarely waits for the disk after the runtime's answer. It
waits for those two writes only (`MessageStore.written(entry=...)`), not for writes queued after
them (other sends' rows, its own delivery receipt, which the event log may hold back briefly).

A `Prefetcher` may hold a received message's event back: `PollVotes` until a vote is decrypted
(bridge.messages.polls), the media desk (when auto-download is on) until a file is in the cache.
While one is held, every later `message`, `message.status` and `presence` event of that session
waits behind it, so a session's events keep their order; other sessions are not held up.
`drain()` (at shutdown) stops waiting and publishes what was held. `settled()` lets the runtime's
`message.durable` wait for held events too (bridge.messages.store_getmessage), so a message is
acknowledged to WhatsApp only once its event is out, even while a download holds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import msgspec

from bridge.events import EventBus, EventKind
from bridge.groups.desk import GROUP_EVENTS, GroupDesk
from bridge.ipc import messaging as ipc
from bridge.messages import outgoing, receipts
from bridge.messages.addresses import LidBook, account, is_user, phone_of
from bridge.messages.errors import ContactInfoHidden, NotOnWhatsApp
from bridge.messages.incoming import normalise
from bridge.messages.model import Message, MessageStatus, PresenceUpdate, StatusChange
from bridge.messages.polls import PollVotes
from bridge.messages.recent import Entry
from bridge.messages.recipients import InvalidRecipient, RecipientKind, parse_recipient
from bridge.messages.send_body import AnySend
from bridge.messages.status import advance
from bridge.messages.store import MessageRetention, MessageStore

log = logging.getLogger(__name__)
MESSAGING_EVENTS = frozenset({"messages.upsert", "messages.update", "message-receipt.update", "presence.update"}
                             | GROUP_EVENTS)
"""The runtime events a session hands to the desk; group events go on to `self.groups`."""


class SessionPort(Protocol):
    """What the desk needs from the sessions layer."""

    def require_open(self, session: str) -> None:
        """Raise `SessionStateError` unless the session is open."""

    def me(self, session: str) -> str | None:
        """The session's own JID once linked."""

    def call(self, session: str, cmd: str, args: dict[str, Any]) -> Awaitable[Any]:
        """Send a command to the session's runtime and return its result."""

    def retention(self) -> MessageRetention:
        """How long the message store keeps messages (settings)."""


class Prefetcher(Protocol):
    def wants(self, message: Message) -> bool:
        """Whether `message`'s event waits for `fetch` (cheap, no I/O)."""

    async def fetch(self, session: str, message: Message) -> Message:
        """The message as its event should carry it once its file is fetched; never raises."""


class SendOutcome(msgspec.Struct, frozen=True):
    id: str
    persisted: bool = True
    server_ack: bool = True


class NumberCheck(msgspec.Struct, frozen=True, omit_defaults=True):
    number: str
    on_whatsapp: bool
    jid: str | None = None
    lid: str | None = None


class Profile(msgspec.Struct, frozen=True):
    jid: str
    picture_url: str | None
    status: str | None


class _SessionBook:
    def __init__(self) -> None:
        self.lids = LidBook()
        self.on_whatsapp: set[str] = set()


_DESKS: weakref.WeakKeyDictionary[EventBus, MessageDesk] = weakref.WeakKeyDictionary()


class MessageDesk:
    @staticmethod
    def of(bus: EventBus) -> MessageDesk | None:
        """The desk made for `bus` last, if any (how the runtime's request handler finds it)."""
        return _DESKS.get(bus)

    def __init__(self, bus: EventBus, sessions: SessionPort, store: MessageStore | None = None,
                 *, clock: Any = time.time) -> None:
        self.bus = bus
        self.sessions = sessions
        self.store = store or MessageStore(bus, retention=sessions.retention())
        self._clock = clock
        self._books: dict[str, _SessionBook] = {}
        self.groups = GroupDesk(bus, sessions, lambda session: self._book(session).lids, self.check_numbers)
        self.prefetchers: list[Prefetcher] = [PollVotes(self.store, sessions)]
        """Who may hold a received message's event back (poll votes here; the media desk adds itself
        when auto-download is on)."""
        self._held: dict[str, asyncio.Task[None]] = {}
        """The last held step of each session (each step awaits the one before it)."""
        self._fetching: set[asyncio.Task[None]] = set()
        self.previewer: Callable[[str], Awaitable[ipc.LinkPreview | None]] | None = None
        """Makes the link preview of a text (the media desk sets it when `BRIDGE_LINK_PREVIEW` is on)."""
        _DESKS[bus] = self

    def _book(self, session: str) -> _SessionBook:
        book = self._books.get(session)
        if book is None:
            book = self._books[session] = _SessionBook()
        return book

    # ----- inbound ---------------------------------------------------------------------------
    def on_runtime_event(self, session: str, name: str, data: msgspec.Struct) -> None:
        """Handle one messaging event of `session` (never blocks, never raises)."""
        if name in GROUP_EVENTS:
            self.groups.on_runtime_event(session, name, data)
            return
        try:
            if isinstance(data, ipc.UpsertData):
                for wa in data.messages:
                    self._upsert(session, wa)
            elif isinstance(data, ipc.MessagesUpdateData):
                self._reports(session, receipts.from_updates(data, self._book(session).lids))
            elif isinstance(data, ipc.ReceiptUpdateData):
                self._reports(session, receipts.from_receipts(data, self._book(session).lids))
            elif isinstance(data, ipc.PresenceUpdateData):
                self._presence(session, data)
        except Exception:  # one odd message must not stop the session's other events
            log.exception("session %s: could not handle runtime event %s", session, name)

    def _upsert(self, session: str, wa: dict[str, Any]) -> None:
        book = self._book(session)
        message = normalise(session, wa, me=self.sessions.me(session), lids=book.lids)
        if message is None:
            return
        if not message.from_me and message.sender_phone:
            book.on_whatsapp.add(f"{message.sender_phone}@s.whatsapp.net")
        _, new = self.store.put(message, wa)
        if not new:
            return
        prefetcher = None if message.from_me else next((p for p in self.prefetchers if p.wants(message)), None)
        if prefetcher is not None:
            self._hold(session, message, prefetcher)
        else:
            self._publish(session, EventKind.MESSAGE, lambda: msgspec.to_builtins(message))

    def _publish(self, session: str, kind: EventKind, data: Callable[[], dict[str, Any]]) -> None:
        """Publish now, or after the events held before it in this session."""
        previous = self._held.get(session)
        if previous is None:
            self.bus.publish(session, kind, data())
            return

        async def after() -> None:
            await asyncio.gather(previous, return_exceptions=True)
            self.bus.publish(session, kind, data())

        self._chain(session, after())

    def _hold(self, session: str, message: Message, prefetcher: Prefetcher) -> None:
        previous = self._held.get(session)

        async def fetch_then_publish() -> None:
            final = message
            try:
                if previous is not None:
                    await asyncio.gather(previous, return_exceptions=True)
                final = await prefetcher.fetch(session, message)
            finally:
                self.bus.publish(session, EventKind.MESSAGE, msgspec.to_builtins(final))

        task = self._chain(session, fetch_then_publish())
        self._fetching.add(task)
        task.add_done_callback(self._fetching.discard)

    def _chain(self, session: str, step: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(step)
        self._held[session] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._held.get(session) is finished:
                del self._held[session]

        task.add_done_callback(done)
        return task

    async def settled(self, session: str, within: float) -> bool:
        """Wait until no event of `session` is held (False after `within` s, the wait left running).

        Why: the runtime asks `message.durable` before Baileys commits a received message's keys and
        acknowledges it. A message whose event is held (its file being downloaded, or queued behind
        one that is) is stored but not yet published: acknowledging it then and crashing would leave
        the row without its event for good (the server forgets it; a copy is never re-published).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (held := self._held.get(session)) is not None:
            done, _ = await asyncio.wait({held}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                return False
        return True

    async def drain(self, *, cancel: bool = True) -> None:
        """Publish every held event: fetches still running are cancelled (their messages go out
        without `media.url`; with `cancel=False` they are waited for), the events queued behind them
        follow in order."""
        while self._held:
            for task in list(self._fetching) if cancel else ():
                task.cancel()
            await asyncio.gather(*self._held.values(), return_exceptions=True)

    def _reports(self, session: str, reports: list[receipts.StatusReport]) -> None:
        for report in reports:
            entry = self.store.get(session, report.id)
            if entry is None:
                self.store.report(session, report.id, report.status, report.participant)
                self._publish_status(session, report.id, report.chat, report.from_me, [(report.status, False)], report)
                continue
            current = entry.statuses.get(report.participant, MessageStatus.PENDING)
            steps = advance(current, report.status)
            if steps:
                self.store.set_status(entry, steps, report.participant)
                self._publish_status(session, report.id, entry.message.chat, entry.message.from_me, steps, report)

    def _publish_status(self, session: str, message_id: str, chat: str, from_me: bool,
                        steps: list[tuple[MessageStatus, bool]], report: receipts.StatusReport | None) -> None:
        participant = report.participant if report else ""
        for status, implied in steps:
            change = StatusChange(
                id=message_id, session=session, chat=chat, from_me=from_me, status=status, implied=implied,
                timestamp=None if implied or report is None else report.timestamp,
                participant=participant or None, participant_phone=phone_of(participant) if participant else None,
                error=report.error if report and status is MessageStatus.FAILED else None,
            )
            self._publish(session, EventKind.MESSAGE_STATUS, partial(msgspec.to_builtins, change))

    def _presence(self, session: str, data: ipc.PresenceUpdateData) -> None:
        lids = self._book(session).lids
        chat = (data.id if data.id.endswith("@g.us") else lids.preferred(data.id)) or data.id
        for jid, presence in data.presences.items():
            who = lids.preferred(jid) or jid
            update = PresenceUpdate(session=session, chat=chat, jid=who, phone=phone_of(lids.phone_jid(jid)),
                                    presence=presence.lastKnownPresence, last_seen=presence.lastSeen)
            self._publish(session, EventKind.PRESENCE, partial(msgspec.to_builtins, update))

    def sent(self, session: str, message_id: str) -> None:
        """The server acknowledged `message_id` (the send command's answer)."""
        entry = self.store.get(session, message_id)
        if entry is not None:
            self._reports(session, [receipts.StatusReport(id=message_id, chat=entry.message.chat, from_me=True,
                                                          status=MessageStatus.SENT)])

    def forget(self, session: str) -> None:
        self._books.pop(session, None)
        self.store.forget(session)

    # ----- outbound --------------------------------------------------------------------------
    async def lookup(self, session: str, message_id: str) -> Entry | None:
        """A message of `session` from the store (memory, else its file)."""
        return await self.store.fetch(session, message_id)

    async def _targets(self, session: str, body: AnySend) -> dict[str, Entry]:
        """The earlier messages `body` points at, loaded from the store before planning."""
        found: dict[str, Entry] = {}
        for field in ("quoted", "message_id"):
            message_id = getattr(body, field, None)
            if isinstance(message_id, str) and message_id:
                entry = await self.store.fetch(session, message_id)
                if entry is not None:
                    found[message_id] = entry
        return found

    async def send(self, session: str, body: AnySend, *, media: ipc.MediaContent | None = None) -> SendOutcome:
        """Send `body` (a media body with its prepared `media`, see `bridge.media.desk`); returns once
        the server acknowledged (see module docstring)."""
        self.sessions.require_open(session)
        targets = await self._targets(session, body)
        args = outgoing.plan_send(session, body, targets.get, now=self._clock(), media=media)
        if self.previewer is not None and isinstance(args.content, ipc.TextContent) and args.content.link_preview:
            preview = await self.previewer(args.content.text)
            if preview is not None:
                args = msgspec.structs.replace(args, content=msgspec.structs.replace(args.content, preview=preview))
        if is_user(args.to) and args.to not in self._book(session).on_whatsapp:
            await self._require_on_whatsapp(session, args.to)
        result = msgspec.convert(await self.sessions.call(session, "send", msgspec.to_builtins(args)), ipc.SendResult)
        if result.message is not None:
            # not forwarded at the ack (see module docstring): the answer carries the WAMessage, so a
            # reply or edit right after the send finds it
            self._upsert(session, result.message)
        if result.server_ack:
            self.sent(session, result.id)
        await self.store.written(entry=self.store.get(session, result.id))
        return SendOutcome(result.id, result.persisted, result.server_ack)

    async def _require_on_whatsapp(self, session: str, jid: str) -> None:
        number = jid.split("@", 1)[0]
        [check] = await self.check_numbers(session, [number])
        if not check.on_whatsapp:
            raise NotOnWhatsApp(f"{number} is not on WhatsApp; check the number (country code first) or ask the "
                                "contact to install WhatsApp")

    async def check_numbers(self, session: str, numbers: list[str]) -> list[NumberCheck]:
        """Per number (order kept): on WhatsApp or not, its JID and LID when known."""
        self.sessions.require_open(session)
        digits = []
        for index, number in enumerate(numbers):
            recipient = parse_recipient(number, field=f"numbers[{index}]")
            if recipient.kind is not RecipientKind.USER or recipient.phone is None:
                raise InvalidRecipient(f"numbers[{index}]: {number!r} is not a phone number; give digits with "
                                       "country code")
            digits.append(recipient.phone)
        raw = await self.sessions.call(session, "check_numbers", {"numbers": list(dict.fromkeys(digits))})
        result = msgspec.convert(raw, ipc.CheckNumbersResult)
        book = self._book(session)
        found: dict[str, ipc.NumberFound] = {}
        for item in result.found:
            jid = account(item.jid)
            if jid:
                found[jid.split("@", 1)[0]] = item
                book.on_whatsapp.add(jid)
                book.lids.learn(jid, item.lid)
        checks = []
        for number in digits:
            hit = found.get(number)
            checks.append(NumberCheck(number=number, on_whatsapp=hit is not None, jid=account(hit.jid) if hit else None,
                                      lid=account(hit.lid) if hit and hit.lid else None))
        return checks

    async def read(self, session: str, message_ids: list[str]) -> list[str]:
        """Send read receipts for these received messages; returns the ids sent."""
        self.sessions.require_open(session)
        keys = []
        for message_id in message_ids:
            known = await self.store.fetch(session, message_id)
            found = {message_id: known} if known is not None else {}
            entry = outgoing.find_target(session, message_id, found.get, "mark read")
            keys.append(msgspec.to_builtins(outgoing.key_of(entry)))
        await self.sessions.call(session, "read", {"keys": keys})
        return message_ids

    async def presence(self, session: str, kind: str, to: str | None) -> None:
        self.sessions.require_open(session)
        args: dict[str, Any] = {"type": kind}
        if to:
            args["to"] = parse_recipient(to).jid
        await self.sessions.call(session, "presence", args)

    async def subscribe(self, session: str, jid: str) -> str:
        self.sessions.require_open(session)
        target = parse_recipient(jid, field="jid").jid
        await self.sessions.call(session, "presence_subscribe", {"jid": target})
        return target

    async def profile(self, session: str, jid: str) -> Profile:
        """Profile picture URL and status text; `ContactInfoHidden` (404) when both are unavailable."""
        self.sessions.require_open(session)
        target = parse_recipient(jid, field="jid").jid
        picture = msgspec.convert(await self.sessions.call(session, "profile_picture", {"jid": target}),
                                  ipc.ProfilePictureResult)
        status = None
        if not target.endswith("@g.us"):
            text = msgspec.convert(await self.sessions.call(session, "status_text", {"jid": target}),
                                   ipc.StatusTextResult)
            status = text.status or None
        if picture.url is None and status is None:
            raise ContactInfoHidden(f"{target} shows this account no profile picture and no status text (none set, "
                                    "or hidden by their privacy settings)")
        return Profile(jid=target, picture_url=picture.url, status=status)

