"""Baileys' `WAMessage` (as proto JSON from Node) -> the one `Message` model.

Node forwards what Baileys' `messages.upsert` gives, untouched; every decision about what a
message *is* lives here, once: unwrapping (disappearing, view-once, document-with-caption),
picking the kind from the first content field, and naming chat and sender by phone number when
WhatsApp used a LID (`bridge.messages.addresses`).

What is not a message a tenant wrote gives `None` and no event: protocol housekeeping (history
sync, app-state keys, ephemeral settings), a bare sender-key distribution, a message Baileys
could not decrypt yet (it asks for a retry and upserts it again). Anything else WhatsApp sends
that the bridge does not model is kind `unsupported` with `raw_type`, never silence.
"""

from __future__ import annotations

import base64
from typing import Any

from bridge.messages.addresses import LidBook, account, is_lid, phone_of
from bridge.messages.model import (
    ContactCard,
    Edit,
    Location,
    Media,
    Message,
    MessageKind,
    MessageStatus,
    Poll,
    PollVote,
    Reaction,
    Revoke,
)
from bridge.messages.status import from_baileys

K = MessageKind
WRAPPERS = (
    "ephemeralMessage", "viewOnceMessage", "documentWithCaptionMessage", "viewOnceMessageV2",
    "viewOnceMessageV2Extension", "editedMessage", "associatedChildMessage", "groupStatusMessage",
    "groupStatusMessageV2",
)
NOT_CONTENT = frozenset({"messageContextInfo", "senderKeyDistributionMessage"})
PROTOCOL_REVOKE = ("REVOKE", 0)
PROTOCOL_EDIT = ("MESSAGE_EDIT", 14)
MEDIA = {
    "imageMessage": K.IMAGE, "videoMessage": K.VIDEO, "audioMessage": K.AUDIO, "documentMessage": K.DOCUMENT,
    "stickerMessage": K.STICKER,
}
POLLS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3")


def unwrap(message: dict[str, Any] | None) -> dict[str, Any] | None:
    """The content inside WhatsApp's wrappers (as Baileys' normalizeMessageContent)."""
    for _ in range(5):
        if not isinstance(message, dict):
            return None
        inner = next((message[w] for w in WRAPPERS if isinstance(message.get(w), dict)), None)
        if inner is None:
            return message
        message = inner.get("message")
    return message if isinstance(message, dict) else None


def content_type(message: dict[str, Any]) -> str | None:
    """The first field that carries content (Baileys' getContentType)."""
    return next((k for k, v in message.items() if k not in NOT_CONTENT and v is not None), None)


def to_int(value: Any) -> int:
    """A proto JSON 64-bit number: int, decimal string, or a Long's `{low, high}`."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, dict) and "low" in value:
        return (int(value.get("high", 0)) << 32) | (int(value["low"]) & 0xFFFFFFFF)
    return 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _context(body: Any) -> dict[str, Any]:
    ctx = body.get("contextInfo") if isinstance(body, dict) else None
    return ctx if isinstance(ctx, dict) else {}


class Addressing:
    """Chat, sender and phone numbers of one message, from its key and the session's LID book."""

    def __init__(self, key: dict[str, Any], me: str | None, lids: LidBook) -> None:
        remote = account(_str(key.get("remoteJid")))
        alt = account(_str(key.get("remoteJidAlt")))
        participant = account(_str(key.get("participant")))
        participant_alt = account(_str(key.get("participantAlt")))
        lids.learn(remote, alt)
        lids.learn(participant, participant_alt)
        self.from_me = bool(key.get("fromMe"))
        self.group = bool(remote) and str(remote).endswith("@g.us")
        self.chat = (remote if self.group else lids.preferred(remote)) or ""
        if self.from_me:
            author = account(me)
        elif self.group:
            author = participant
        else:
            author = remote
        self.sender = lids.preferred(author) or ""
        self.sender_phone = phone_of(lids.phone_jid(author))
        self.sender_lid = lids.lid(author) if author else None
        if self.sender_lid is None and is_lid(author):
            self.sender_lid = author


def normalise(session: str, wa: dict[str, Any], *, me: str | None, lids: LidBook) -> Message | None:
    """One WAMessage as a `Message`, or None when it is not a message a tenant wrote (see above)."""
    key = wa.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("id"), str):
        return None
    content = unwrap(wa.get("message"))
    if not content:
        return None
    field = content_type(content)
    if field is None:
        return None
    where = Addressing(key, me, lids)
    body = content.get(field)
    fields = _fields(field, body)
    if fields is None:
        return None
    ctx = _context(body)
    quoted = _str(ctx.get("stanzaId"))
    mentions = [m for m in (account(_str(j)) for j in ctx.get("mentionedJid") or []) if m]
    if where.from_me:
        status = from_baileys(wa.get("status")) or MessageStatus.PENDING
    else:
        status = MessageStatus.DELIVERED
    return Message(
        id=key["id"],
        session=session,
        chat=where.chat,
        sender=where.sender,
        sender_phone=where.sender_phone,
        sender_lid=where.sender_lid,
        from_me=where.from_me,
        timestamp=to_int(wa.get("messageTimestamp")),
        status=status,
        push_name=_str(wa.get("pushName")) or None,
        quoted=quoted,
        mentions=[lids.preferred(m) or m for m in mentions],
        forwarded=bool(ctx.get("isForwarded")),
        **fields,
    )


def _fields(field: str, body: Any) -> dict[str, Any] | None:
    """The kind and kind-specific fields of content field `field`; None for housekeeping."""
    b = body if isinstance(body, dict) else {}
    if field == "conversation":
        return {"kind": K.TEXT, "text": body if isinstance(body, str) else ""}
    if field == "extendedTextMessage":
        return {"kind": K.TEXT, "text": _str(b.get("text")) or ""}
    if field in ("locationMessage", "liveLocationMessage"):
        return {"kind": K.LOCATION, "location": Location(
            lat=float(b.get("degreesLatitude") or 0.0), long=float(b.get("degreesLongitude") or 0.0),
            name=_str(b.get("name")), address=_str(b.get("address")))}
    if field == "contactMessage":
        return {"kind": K.CONTACT, "contacts": [_card(b)]}
    if field == "contactsArrayMessage":
        return {"kind": K.CONTACT, "contacts": [_card(c) for c in b.get("contacts") or [] if isinstance(c, dict)]}
    if field in POLLS:
        options = [str(o.get("optionName", "")) for o in b.get("options") or [] if isinstance(o, dict)]
        return {"kind": K.POLL, "poll": Poll(name=_str(b.get("name")) or "", options=options,
                                             selectable_count=to_int(b.get("selectableOptionsCount")))}
    if field == "pollUpdateMessage":
        poll_key = b.get("pollCreationMessageKey") or {}
        return {"kind": K.POLL_VOTE, "poll_vote": PollVote(poll_id=_str(poll_key.get("id")) or "")}
    if field == "reactionMessage":
        target = b.get("key") or {}
        return {"kind": K.REACTION, "reaction": Reaction(message_id=_str(target.get("id")) or "",
                                                         emoji=_str(b.get("text")) or "")}
    if field == "protocolMessage":
        return _protocol(b)
    if field in MEDIA:
        kind = K.VOICE if field == "audioMessage" and b.get("ptt") else MEDIA[field]
        media = Media(mimetype=_str(b.get("mimetype")), file_length=to_int(b.get("fileLength")) or None,
                      file_name=_str(b.get("fileName")), seconds=to_int(b.get("seconds")) or None,
                      width=to_int(b.get("width")) or None, height=to_int(b.get("height")) or None,
                      sha256=_hex(b.get("fileSha256")), has_thumbnail=bool(b.get("jpegThumbnail")),
                      gif_playback=bool(b.get("gifPlayback")))
        return {"kind": kind, "text": _str(b.get("caption")), "media": media}
    return {"kind": K.UNSUPPORTED, "raw_type": field}


def _hex(value: Any) -> str | None:
    """A proto JSON bytes field (base64) as hex, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return None


def _card(b: dict[str, Any]) -> ContactCard:
    return ContactCard(display_name=_str(b.get("displayName")) or "", vcard=_str(b.get("vcard")) or "")


def _protocol(b: dict[str, Any]) -> dict[str, Any] | None:
    kind = b.get("type")
    target = _str((b.get("key") or {}).get("id")) or ""
    if kind in PROTOCOL_REVOKE:
        return {"kind": K.REVOKE, "revoke": Revoke(message_id=target)}
    if kind in PROTOCOL_EDIT:
        edited = unwrap(b.get("editedMessage")) or {}
        text = _str(edited.get("conversation")) or _str((edited.get("extendedTextMessage") or {}).get("text"))
        for media in MEDIA:
            text = text or _str((edited.get(media) or {}).get("caption"))
        return {"kind": K.EDIT, "text": text, "edit": Edit(message_id=target, text=text or "")}
    return None
