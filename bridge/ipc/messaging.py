"""IPC shapes of messaging: the `send` content union, chat actions, and Baileys' message events.

Part of the catalogue in `bridge.ipc.protocol` (docs/protocol.md lists them); kept in their own
module so the envelope and auth protocol stays short to read.

The split of work these shapes encode: Python validates and decides (recipients, WhatsApp's
limits, which earlier message a reaction or edit points at, quoting), Node only turns each
content into the object Baileys' `sendMessage` takes. In the other direction Node forwards
Baileys' own objects (`WAMessage` as proto JSON, message keys, receipts, presences) and Python
normalises them (`bridge.messages`). Message keys therefore keep Baileys' field names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_NUMBERS_PER_CHECK = 50
"""`check_numbers` asks about at most this many numbers (one usync query)."""
MAX_KEYS_PER_READ = 1000
Jid = Annotated[str, msgspec.Meta(min_length=3, max_length=256)]
WaMessageJson = dict[str, Any]
"""A Baileys `WAMessage` (`{key, message, messageTimestamp, pushName, ...}`) as proto JSON:
bytes base64, 64-bit numbers possibly as strings, enums possibly as names."""


class MessageKey(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Baileys' `WAMessageKey`, with its field names."""

    remoteJid: Jid
    fromMe: bool
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    participant: str | None = None


class LinkPreview(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What Python fetched for a text's first URL (bridge.media.link_preview); Node fetches nothing."""

    matched_text: str
    title: str
    description: str | None = None
    jpeg_thumbnail: str | None = None
    """base64 JPEG."""


class TextContent(msgspec.Struct, tag_field="kind", tag="text", forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=65_536)]
    mentions: list[Jid] = []
    link_preview: bool = True
    preview: LinkPreview | None = None
    """The preview to attach; none when absent (the runtime never asks Baileys to make one)."""


class ReactionContent(msgspec.Struct, tag_field="kind", tag="reaction", forbid_unknown_fields=True):
    key: MessageKey
    emoji: Annotated[str, msgspec.Meta(max_length=32)]


class EditContent(msgspec.Struct, tag_field="kind", tag="edit", forbid_unknown_fields=True):
    key: MessageKey
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=65_536)]


class RevokeContent(msgspec.Struct, tag_field="kind", tag="revoke", forbid_unknown_fields=True):
    key: MessageKey


class LocationContent(msgspec.Struct, tag_field="kind", tag="location", forbid_unknown_fields=True,
                      omit_defaults=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    long: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    name: str | None = None
    address: str | None = None


class Card(msgspec.Struct, forbid_unknown_fields=True):
    display_name: str
    vcard: str


class ContactContent(msgspec.Struct, tag_field="kind", tag="contact", forbid_unknown_fields=True,
                     omit_defaults=True):
    contacts: Annotated[list[Card], msgspec.Meta(min_length=1)]
    display_name: str | None = None
    """The card's title when several contacts go in one message."""


class PollContent(msgspec.Struct, tag_field="kind", tag="poll", forbid_unknown_fields=True):
    name: str
    options: Annotated[list[str], msgspec.Meta(min_length=2, max_length=12)]
    selectable_count: Annotated[int, msgspec.Meta(ge=0, le=12)]


class ForwardContent(msgspec.Struct, tag_field="kind", tag="forward", forbid_unknown_fields=True):
    message: WaMessageJson


class MediaContent(msgspec.Struct, tag_field="kind", tag="media", forbid_unknown_fields=True, omit_defaults=True):
    """An encrypted file in the spool (docs/media.md): Node uploads `path` to the media host and sends
    the message with these fields. Bytes are base64; the media key never leaves the bridge."""

    media_type: Literal["image", "video", "audio", "document", "sticker"]
    path: str
    media_key: str
    file_sha256: str
    file_enc_sha256: str
    file_length: int
    mimetype: str
    caption: str | None = None
    file_name: str | None = None
    ptt: bool = False
    gif_playback: bool = False
    seconds: int | None = None
    width: int | None = None
    height: int | None = None
    jpeg_thumbnail: str | None = None


Content = (TextContent | ReactionContent | EditContent | RevokeContent | LocationContent | ContactContent
           | PollContent | ForwardContent | MediaContent)


class SendArgs(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    to: Jid
    content: Content | None = None
    quoted: WaMessageJson | None = None
    """The message replied to, as the store keeps it; Node passes it to Baileys as `quoted`."""
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=65_536)] | None = None
    """The first protocol's plain text: the same as `content: {kind: "text", text}` (one of the two)."""


class SendResult(msgspec.Struct):
    id: str
    persisted: bool = True
    server_ack: bool = True
    message: WaMessageJson | None = None
    """The WAMessage Baileys built and sent (proto JSON): what the store keeps for later replies. Only when
    the runtime did not forward it at the server's ack already (`messages.upsert` append)."""


class ReadArgs(msgspec.Struct, forbid_unknown_fields=True):
    keys: Annotated[list[MessageKey], msgspec.Meta(min_length=1, max_length=MAX_KEYS_PER_READ)]


class PresenceArgs(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: Literal["available", "unavailable", "composing", "recording", "paused"]
    to: Jid | None = None


class JidArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: Jid


class ProfilePictureArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: Jid
    high_res: bool = False


class ProfilePictureResult(msgspec.Struct):
    url: str | None


class StatusTextResult(msgspec.Struct):
    status: str | None
    set_at: int | None = None


class MediaRetryArgs(msgspec.Struct, forbid_unknown_fields=True):
    message: WaMessageJson
    """The received media message whose file the media host no longer has, as the bridge remembers it."""


class MediaRetryResult(msgspec.Struct):
    direct_path: str
    """Where the sender's phone uploaded the file again (same media key, same hashes)."""


class PollVoteArgs(msgspec.Struct, forbid_unknown_fields=True):
    poll_id: str
    poll_enc_key: str
    """The poll's messageSecret, base64."""

    enc_payload: str
    enc_iv: str
    creators: list[Jid]
    """Who may have created the poll, as the voter's phone named them (phone JID and/or LID)."""

    voters: list[Jid]
    """The voter, phone JID and/or LID (the key depends on which one the voter's phone used)."""

    creator_is_me: bool = False
    """The poll is this account's: the runtime adds its own phone JID and LID to `creators`."""


class PollVoteResult(msgspec.Struct):
    selected: list[str]
    """sha256 (hex) of each chosen option's name."""


class CheckNumbersArgs(msgspec.Struct, forbid_unknown_fields=True):
    numbers: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6,20}$")]],
                       msgspec.Meta(min_length=1, max_length=MAX_NUMBERS_PER_CHECK)]


class NumberFound(msgspec.Struct):
    jid: str
    lid: str | None = None


class CheckNumbersResult(msgspec.Struct):
    found: list[NumberFound]
    """Only the numbers that are on WhatsApp (Baileys' onWhatsApp leaves the others out)."""


# --------------------------------------------------------------------------- events


class UpsertData(msgspec.Struct):
    type: Literal["notify", "append"]
    messages: list[WaMessageJson]


class StatusUpdate(msgspec.Struct):
    key: dict[str, Any]
    status: int | str
    error: str | None = None


class MessagesUpdateData(msgspec.Struct):
    updates: list[StatusUpdate]


class Receipt(msgspec.Struct):
    userJid: str
    receiptTimestamp: int | str | None = None
    readTimestamp: int | str | None = None
    playedTimestamp: int | str | None = None


class ReceiptUpdate(msgspec.Struct):
    key: dict[str, Any]
    receipt: Receipt


class ReceiptUpdateData(msgspec.Struct):
    receipts: list[ReceiptUpdate]


class ChatPresence(msgspec.Struct):
    lastKnownPresence: str
    lastSeen: int | None = None


class PresenceUpdateData(msgspec.Struct):
    id: str
    presences: dict[str, ChatPresence]


class AskedKey(msgspec.Struct, kw_only=True):
    """The WAMessageKey Baileys passes to `getMessage` (other key fields it adds are ignored)."""

    remoteJid: str = ""
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    fromMe: bool = False
    participant: str | None = None


class GetMessageArgs(msgspec.Struct, forbid_unknown_fields=True):
    key: AskedKey


class MessageDurableArgs(msgspec.Struct, forbid_unknown_fields=True):
    """`message.durable`: the runtime forwarded a received message (`messages.upsert`) and waits until
    it is stored before Baileys may commit its keys and acknowledge it to WhatsApp."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class MessageDurableResult(msgspec.Struct):
    durable: bool
