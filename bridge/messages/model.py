"""The one message model, for both directions (docs/messages.md).

Every message the bridge sends or receives becomes a `Message`: the `message` event's data, what
the message store keeps, what `GET .../messages/{id}` answers. Kind-specific fields are present
only for their kind (`omit_defaults`), so a client reads `kind` and then the field named after it.

Why one model: peer gateways grew one shape per direction and per event, and clients ended up
normalising them again. Here Node forwards Baileys' own objects untouched and
`bridge.messages.incoming` turns them into this shape, once.
"""

from __future__ import annotations

import enum

import msgspec


class MessageKind(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACT = "contact"
    POLL = "poll"
    POLL_VOTE = "poll_vote"
    REACTION = "reaction"
    EDIT = "edit"
    REVOKE = "revoke"
    UNSUPPORTED = "unsupported"


MEDIA_KINDS = frozenset({
    MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.VOICE, MessageKind.DOCUMENT,
    MessageKind.STICKER,
})
"""Kinds that carry a file (docs/media.md)."""


class MessageStatus(enum.StrEnum):
    """Where a message is on its way; `bridge.messages.status` orders them."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"


class Location(msgspec.Struct, frozen=True, omit_defaults=True):
    lat: float
    long: float
    name: str | None = None
    address: str | None = None


class ContactCard(msgspec.Struct, frozen=True):
    display_name: str
    vcard: str


class Poll(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    options: list[str]
    selectable_count: int
    """How many options a voter may pick; 0 means any number (WhatsApp's "multiple answers")."""

    votes: dict[str, list[str]] = {}
    """On the stored poll: each voter's latest choice (voter = phone number, else JID); a voter who
    took their vote back is not here."""

    tally: dict[str, int] = {}
    """On the stored poll: votes per option, from `votes`."""


class PollVote(msgspec.Struct, frozen=True, omit_defaults=True):
    poll_id: str
    """The id of the poll voted on."""

    selected: list[str] | None = None
    """Option names chosen ([] = the vote was taken back), when the bridge could decrypt the vote
    (it needs the poll in its store); else None."""

    tally: dict[str, int] | None = None
    """The poll's votes per option after this vote (when decrypted)."""


class Reaction(msgspec.Struct, frozen=True):
    message_id: str
    """The message reacted to."""

    emoji: str
    """The emoji; "" means the reaction was removed."""


class Edit(msgspec.Struct, frozen=True):
    message_id: str
    text: str


class Revoke(msgspec.Struct, frozen=True):
    message_id: str


class Media(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a media message says about its file; the bytes come from
    `GET /sessions/{id}/messages/{msg}/media` (docs/media.md). The media key is never here."""

    mimetype: str | None = None
    file_length: int | None = None
    file_name: str | None = None
    seconds: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    """Hex sha256 of the plaintext file (WhatsApp's fileSha256): what the download is checked against."""

    has_thumbnail: bool = False
    gif_playback: bool = False
    url: str | None = None
    """The API path of the decrypted file, set when auto-download (`BRIDGE_MEDIA_AUTO_DOWNLOAD`)
    put it into the cache before this event: a webhook receiver can fetch it at once."""

    download_error: str | None = None
    """The error code when auto-download tried and failed (e.g. `media_gone`, `media_corrupt`);
    the file may still be fetched on request later."""


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One message, sent or received; see the module docstring and docs/messages.md."""

    id: str
    session: str
    chat: str
    """The conversation: the contact's user JID (phone number JID when known, else its LID) or the group JID."""

    sender: str
    """The author: the contact (or, in a group, the participant); our own JID for `from_me`."""

    sender_phone: str | None = None
    """The author's phone number (digits), also when WhatsApp addressed them only by LID."""

    sender_lid: str | None = None
    from_me: bool
    kind: MessageKind
    timestamp: int
    """Unix seconds, as WhatsApp stamped the message."""

    status: MessageStatus
    push_name: str | None = None
    text: str | None = None
    """Text of a text or edit message, caption of a media message."""

    quoted: str | None = None
    """Id of the message this one replies to."""

    mentions: list[str] = []
    forwarded: bool = False
    location: Location | None = None
    contacts: list[ContactCard] | None = None
    poll: Poll | None = None
    poll_vote: PollVote | None = None
    reaction: Reaction | None = None
    edit: Edit | None = None
    revoke: Revoke | None = None
    media: Media | None = None
    raw_type: str | None = None
    """For `unsupported`: the proto field WhatsApp used (e.g. `eventMessage`), rather than silence."""


class StatusChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `message.status` event: message `id` in `chat` reached `status`.

    `participant`: in a group, whose receipt it was (a group message is delivered and read per
    member). `implied`: no receipt said so, but a later status proves it (read implies delivered).
    """

    id: str
    session: str
    chat: str
    from_me: bool
    status: MessageStatus
    timestamp: int | None = None
    participant: str | None = None
    participant_phone: str | None = None
    implied: bool = False
    error: str | None = None


class PresenceUpdate(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `presence` event: `jid` is available/unavailable, or composing/recording/paused in `chat`."""

    session: str
    chat: str
    jid: str
    phone: str | None = None
    presence: str
    last_seen: int | None = None
