"""The simulator control API's answers as typed structs (decoded by `SimulatorClient`).

Field names are the JSON names of simulator/README.md; `from` is `from_` in Python.
Unknown fields are ignored, so the simulator may grow without breaking older tests.
"""

from __future__ import annotations

from typing import Literal

import msgspec

ContactKind = Literal["text", "reaction", "edit", "revoke", "location", "contact", "poll", "poll_vote"]
"""What a contact can send (`POST /contacts/<phone>/send` `kind`)."""

ReceiptType = Literal["delivery", "read", "played"]
PresenceType = Literal["available", "unavailable", "composing", "recording", "paused"]
Addressing = Literal["pn", "lid"]


class Account(msgspec.Struct, frozen=True):
    phone: str
    lid: str
    jid: str
    banned: bool
    identity_pub: str
    devices: list[int]
    push_name: str = ""
    presence: str = "unavailable"


class Device(msgspec.Struct, frozen=True):
    jid: str
    lid: str
    phone: str
    device: int
    connected: bool
    removed: bool
    pre_keys: int
    signed_pre_key_id: int | None
    platform: str | None
    offline_queue: int


class Contact(msgspec.Struct, frozen=True):
    phone: str
    jid: str
    lid: str
    received: int
    addressing: Addressing = "pn"
    push_name: str = ""
    picture_url: str | None = None
    status: str | None = None
    presence: str = "unavailable"
    sent: int = 0
    retries: int = 0  # retry receipts sessions sent for the contact's messages (each answered by a resend)


class Quoted(msgspec.Struct, frozen=True):
    id: str
    participant: str | None = None


class Reaction(msgspec.Struct, frozen=True):
    key_id: str | None
    emoji: str
    from_me: bool = False


class Edit(msgspec.Struct, frozen=True):
    key_id: str | None
    text: str | None


class Revoke(msgspec.Struct, frozen=True):
    key_id: str | None


class Location(msgspec.Struct, frozen=True):
    lat: float
    long: float
    name: str | None = None
    address: str | None = None


class ContactCard(msgspec.Struct, frozen=True):
    display_name: str
    vcard: str


class Poll(msgspec.Struct, frozen=True):
    name: str
    options: list[str]
    selectable_count: int


class PollVote(msgspec.Struct, frozen=True):
    poll_id: str | None
    selected: list[str] | None = None
    """Option names, when the reader knows the poll (it created or received it); else None."""


class Media(msgspec.Struct, frozen=True):
    mimetype: str | None = None
    file_length: int = 0
    file_name: str | None = None


class MessageContent(msgspec.Struct, frozen=True):
    """A decrypted proto.Message described: `kind` and the fields of that kind."""

    id: str
    kind: str = "unsupported"
    raw_type: str | None = None
    text: str | None = None
    t: int = 0
    quoted: Quoted | None = None
    mentions: list[str] = []
    reaction: Reaction | None = None
    edit: Edit | None = None
    revoke: Revoke | None = None
    location: Location | None = None
    contacts: list[ContactCard] | None = None
    poll: Poll | None = None
    poll_vote: PollVote | None = None
    media: Media | None = None
    protocol_type: str | None = None


class InboxMessage(MessageContent, frozen=True):
    """What a contact received from a session and decrypted (`type` is the enc type: pkmsg or msg;
    `to` is how the session addressed the contact: its phone-number jid or its LID)."""

    from_: str = msgspec.field(default="", name="from")
    chat: str | None = None
    """The group jid for a group message (None in a 1:1 chat)."""
    from_lid: str | None = None
    from_device: str | None = None
    to: str | None = None
    type: str = ""
    stanza_type: str | None = None
    edit_attr: str | None = None


class OutboxMessage(MessageContent, frozen=True):
    """What a contact sent."""

    to: str = ""


class SentMessage(msgspec.Struct, frozen=True):
    id: str
    to: str
    devices: int
    queued: int
    kind: str = "text"


class ReceiptSent(msgspec.Struct, frozen=True):
    ids: list[str]
    type: ReceiptType
    devices: int


class Receipt(msgspec.Struct, frozen=True):
    """A receipt a session sent for one of the contact's messages (`type` delivery, read, ...)."""

    id: str
    type: str
    from_: str = msgspec.field(name="from")


class Chatstate(msgspec.Struct, frozen=True):
    from_: str = msgspec.field(name="from")
    to: str = ""
    type: str = ""
    t: int = 0


class PresenceState(msgspec.Struct, frozen=True):
    """The contact's own presence, the session devices subscribed to it, chat states it received."""

    presence: str
    subscribers: list[str]
    chatstates: list[Chatstate]


class GroupParticipant(msgspec.Struct, frozen=True):
    jid: str
    lid: str
    role: Literal["member", "admin", "superadmin"]


class Group(msgspec.Struct, frozen=True):
    id: str
    subject: str
    creator: str
    description: str | None
    announce: bool
    restrict: bool
    invite_code: str
    participants: list[GroupParticipant]


class ParticipantResult(msgspec.Struct, frozen=True):
    jid: str
    status: str
    """"200", or WhatsApp's per-participant error: 404 not on WhatsApp / not in the group, 409
    already in the group, 403 refused by the user's privacy setting."""


class SimulatorInfo(msgspec.Struct, frozen=True):
    ws_url: str
    control_url: str
    root_pub: str
