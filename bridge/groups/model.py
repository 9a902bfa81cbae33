"""What the API answers and the group events carry (docs/groups.md).

Participants are named as messages name senders: the phone-number JID when WhatsApp gave it (or
the session's LID book knows it), else the LID, with `phone` and `lid` beside it.
"""

from __future__ import annotations

import enum

import msgspec


class Role(enum.StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    SUPERADMIN = "superadmin"


class Participant(msgspec.Struct, frozen=True):
    jid: str
    phone: str | None
    lid: str | None
    role: Role = Role.MEMBER


class GroupInfo(msgspec.Struct, frozen=True):
    id: str
    subject: str
    description: str | None
    owner: str | None
    created: int | None
    announce: bool
    """Only admins send messages."""
    restrict: bool
    """Only admins edit the subject, description and settings ("locked info")."""
    size: int
    participants: list[Participant]


class ParticipantAction(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"
    PROMOTE = "promote"
    DEMOTE = "demote"


class ParticipantResult(msgspec.Struct, frozen=True):
    jid: str
    phone: str | None
    status: str
    """The server's code for this participant: "200" done, else its error code."""
    result: str
    """What happened, in words: added, removed, promoted, demoted, not_on_whatsapp, privacy_blocked,
    already_in_group, not_in_group, recently_left, not_authorized, failed."""


class Membership(enum.StrEnum):
    JOINED = "joined"
    LEFT = "left"
    REMOVED = "removed"


class GroupUpdate(msgspec.Struct, frozen=True, omit_defaults=True):
    """`group.update`: the group's info changed, or the account joined or left it."""

    session: str
    group: str
    changed: list[str]
    """The fields below that this event sets: subject, description, announce, restrict, membership."""
    author: str | None = None
    author_phone: str | None = None
    subject: str | None = None
    description: str | None = None
    """With "description" in `changed`: the new text, null when it was removed."""
    announce: bool | None = None
    restrict: bool | None = None
    membership: Membership | None = None
    metadata: GroupInfo | None = None
    """When the account joined a group WhatsApp described in full (created it, was added at creation)."""


class ParticipantsChange(msgspec.Struct, frozen=True):
    """`group.participants`: members added, removed (or left), promoted, demoted."""

    session: str
    group: str
    action: str
    """added, removed, left (removed themselves), promoted, demoted, changed_number."""
    participants: list[Participant]
    author: str | None
    author_phone: str | None
    includes_me: bool
