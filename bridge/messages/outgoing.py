"""Plan a send: a validated HTTP body + what the bridge knows of earlier messages -> the IPC
`send` arguments. Pure: no I/O, so every refusal is testable without a runtime.

What is checked here (the body's own limits were checked by `send_body`):
- recipients and mentions (`invalid_recipient`, 400);
- the message a reply, reaction, edit, revoke or forward points at exists (`message_not_found`,
  404) and may be used that way (`message_refused`, 409): only your own text messages can be
  edited, within `EDIT_WINDOW`; only your own messages can be revoked (in groups Baileys asks
  as admin), within `REVOKE_WINDOW`; reactions, replies and forwards need a message with content.
The referenced message's Baileys key and content travel in the command, so Node looks nothing up.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.ipc import messaging as ipc
from bridge.messages.errors import MessageNotFound, MessageRefused
from bridge.messages.model import MEDIA_KINDS, MessageKind
from bridge.messages.recent import Entry
from bridge.messages.recipients import InvalidRecipient, RecipientKind, parse_recipient
from bridge.messages.send_body import (
    AnySend,
    SendContact,
    SendEdit,
    SendForward,
    SendLocation,
    SendMedia,
    SendPoll,
    SendReaction,
    SendRevoke,
    SendText,
)

EDIT_WINDOW = 15 * 60
"""WhatsApp lets the author edit a message for 15 minutes."""
REVOKE_WINDOW = 60 * 3600
"""WhatsApp lets the author delete a message for everyone for about 60 hours."""
K = MessageKind
CONTENT_KINDS = frozenset({K.TEXT, K.LOCATION, K.CONTACT, K.POLL, *MEDIA_KINDS})
FORWARDABLE = frozenset({K.TEXT, K.LOCATION, K.CONTACT})

Lookup = Callable[[str], Entry | None]


def plan_send(session: str, body: AnySend, lookup: Lookup, *, now: float,
              media: ipc.MediaContent | None = None, preview: ipc.LinkPreview | None = None) -> ipc.SendArgs:
    """The `send` arguments for `body`; raises the refusals listed in the module docstring.
    A media body comes with its `media` content, already prepared by `bridge.media`; a text may
    come with the `preview` of its first URL (`bridge.media.link_preview`)."""
    quoted = _quoted(session, body, lookup)
    match body:
        case SendMedia():
            if media is None:
                raise AssertionError("a media send needs its prepared content (bridge.media.desk)")
            return ipc.SendArgs(to=parse_recipient(body.to).jid, content=media, quoted=quoted)
        case SendText():
            mentions = [_mention(m, i) for i, m in enumerate(body.mentions)]
            content: ipc.Content = ipc.TextContent(text=body.text, mentions=list(dict.fromkeys(mentions)),
                                                   link_preview=body.link_preview,
                                                   preview=preview if body.link_preview else None)
            return ipc.SendArgs(to=parse_recipient(body.to).jid, content=content, quoted=quoted)
        case SendLocation():
            content = ipc.LocationContent(lat=body.lat, long=body.long, name=body.name, address=body.address)
            return ipc.SendArgs(to=parse_recipient(body.to).jid, content=content, quoted=quoted)
        case SendContact():
            cards = [ipc.Card(display_name=c.display_name, vcard=c.vcard) for c in body.contacts]
            title = None if len(cards) == 1 else f"{len(cards)} contacts"
            return ipc.SendArgs(to=parse_recipient(body.to).jid,
                                content=ipc.ContactContent(contacts=cards, display_name=title), quoted=quoted)
        case SendPoll():
            content = ipc.PollContent(name=body.name, options=body.options, selectable_count=body.selectable_count)
            return ipc.SendArgs(to=parse_recipient(body.to).jid, content=content, quoted=quoted)
        case SendReaction():
            target = find_target(session, body.message_id, lookup, "react to")
            _require(target.message.kind in CONTENT_KINDS, body.message_id,
                     f"is a {target.message.kind}; react to a message with content")
            key = key_of(target)
            return ipc.SendArgs(to=key.remoteJid, content=ipc.ReactionContent(key=key, emoji=body.emoji))
        case SendEdit():
            target = find_target(session, body.message_id, lookup, "edit")
            _require(target.message.from_me, body.message_id, "was written by someone else; you can edit only yours")
            _require(target.message.kind is K.TEXT, body.message_id,
                     f"is a {target.message.kind}; only text messages can be edited")
            _require(now - target.message.timestamp <= EDIT_WINDOW, body.message_id,
                     f"is older than {EDIT_WINDOW // 60} minutes; WhatsApp no longer lets it be edited")
            key = key_of(target)
            return ipc.SendArgs(to=key.remoteJid, content=ipc.EditContent(key=key, text=body.text))
        case SendRevoke():
            target = find_target(session, body.message_id, lookup, "delete")
            group = target.message.chat.endswith("@g.us")
            _require(target.message.from_me or group, body.message_id,
                     "was written by someone else; you can delete only yours for everyone")
            _require(now - target.message.timestamp <= REVOKE_WINDOW, body.message_id,
                     f"is older than {REVOKE_WINDOW // 3600} hours; WhatsApp no longer deletes it for everyone")
            key = key_of(target)
            return ipc.SendArgs(to=key.remoteJid, content=ipc.RevokeContent(key=key))
        case SendForward():
            target = find_target(session, body.message_id, lookup, "forward")
            _require(target.message.kind in FORWARDABLE, body.message_id,
                     f"is a {target.message.kind}; forward text, location or contact messages")
            return ipc.SendArgs(to=parse_recipient(body.to).jid, content=ipc.ForwardContent(message=target.raw))
    raise AssertionError(f"unhandled send body {type(body).__name__}")  # pragma: no cover


def _mention(value: str, index: int) -> str:
    recipient = parse_recipient(value, field=f"mentions[{index}]")
    if recipient.kind is RecipientKind.GROUP:
        raise InvalidRecipient(f"mentions[{index}]: {value!r} is a group; mention users (phone numbers or JIDs)")
    return recipient.jid


def _quoted(session: str, body: AnySend, lookup: Lookup) -> dict[str, object] | None:
    message_id = getattr(body, "quoted", None)
    if not message_id:
        return None
    target = find_target(session, message_id, lookup, "reply to", field="quoted")
    _require(target.message.kind in CONTENT_KINDS, message_id,
             f"is a {target.message.kind}; reply to a message with content")
    return target.raw


def find_target(session: str, message_id: str, lookup: Lookup, verb: str, field: str = "message_id") -> Entry:
    entry = lookup(message_id)
    if entry is None or not isinstance(entry.raw.get("message"), dict):
        raise MessageNotFound(
            f"{field}: session {session} does not know message {message_id!r}, so it cannot {verb} it; use an id "
            "from a `message` event or a send answer of this session (the bridge keeps each session's messages "
            "for BRIDGE_MESSAGE_RETENTION_DAYS)"
        )
    return entry


def _require(condition: bool, message_id: str, why: str) -> None:
    if not condition:
        raise MessageRefused(f"message {message_id} {why}")


def key_of(entry: Entry) -> ipc.MessageKey:
    key = entry.raw.get("key") or {}
    participant = key.get("participant")
    return ipc.MessageKey(remoteJid=str(key.get("remoteJid") or entry.message.chat), fromMe=bool(key.get("fromMe")),
                          id=str(key.get("id") or entry.message.id),
                          participant=participant if isinstance(participant, str) and participant else None)
