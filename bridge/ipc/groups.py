"""IPC shapes of groups: the group commands and Baileys' group events.

Part of the catalogue in `bridge.ipc.protocol` (docs/protocol.md lists them), like
`bridge.ipc.messaging`. Python validates every JID and count before a command leaves
(`bridge.groups`); Node calls Baileys' `group*` function and forwards Baileys' own objects
(`GroupMetadata`, group updates, participant changes), which Python normalises. Field names of
those objects are Baileys'.

A server refusal of a group query comes back as an IPC error whose code names the server's
answer (`group_not_found` 404, `group_forbidden` 403 not a member, `group_not_authorized` 401
not an admin, `group_bad_request` 400, `group_conflict` 409, `group_gone` 410,
`group_not_acceptable` 406); Python turns each into its own error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_PARTICIPANTS = 1023
"""A group holds at most 1024 members: the creator and 1023 others."""
GroupJid = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5,20}(-[0-9]{5,20})?@g\.us$")]
UserJid = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}@(s\.whatsapp\.net|lid)$")]
Participants = Annotated[list[UserJid], msgspec.Meta(min_length=1, max_length=MAX_PARTICIPANTS)]
GroupMetadataJson = dict[str, Any]
"""Baileys' `GroupMetadata`: id, subject, subjectOwner, subjectTime, owner, creation, desc,
descId, announce, restrict, size, addressingMode, participants [{id, phoneNumber, lid, admin}]."""


class GroupJidArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: GroupJid


class GroupMetadataArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: GroupJid
    cached: bool = False
    """Answer from the runtime's group cache when it holds the group (else ask the server)."""


class GroupMetadataResult(msgspec.Struct):
    group: GroupMetadataJson
    cached: bool = False


class GroupListResult(msgspec.Struct):
    groups: list[GroupMetadataJson]


class GroupCreateArgs(msgspec.Struct, forbid_unknown_fields=True):
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    participants: Participants


class GroupCreateResult(msgspec.Struct):
    group: GroupMetadataJson


class GroupSubjectArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: GroupJid
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class GroupDescriptionArgs(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    jid: GroupJid
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    """None removes the description."""


class GroupSettingArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: GroupJid
    setting: Literal["announcement", "not_announcement", "locked", "unlocked"]


class GroupParticipantsArgs(msgspec.Struct, forbid_unknown_fields=True):
    jid: GroupJid
    action: Literal["add", "remove", "promote", "demote"]
    participants: Participants


class ParticipantOutcome(msgspec.Struct):
    jid: str
    status: str
    """"200", or the server's error code for this participant (403 privacy, 404 not on WhatsApp,
    409 already in the group, ...)."""


class GroupParticipantsResult(msgspec.Struct):
    results: list[ParticipantOutcome]


class InviteCodeResult(msgspec.Struct):
    code: str | None


class GroupJoinArgs(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{6,64}$")]


class GroupJoinResult(msgspec.Struct):
    jid: str | None


# --------------------------------------------------------------------------- events


class GroupsUpsertData(msgspec.Struct):
    groups: list[GroupMetadataJson]


class GroupsUpdateData(msgspec.Struct):
    updates: list[dict[str, Any]]
    """Baileys' groups.update items that are changes (`{id, subject?, desc?, announce?, restrict?,
    author?, authorPn?}`); a listing's full metadata only refreshes the runtime's cache."""


class ParticipantJson(msgspec.Struct):
    id: str
    phoneNumber: str | None = None
    lid: str | None = None
    admin: str | None = None


class GroupParticipantsData(msgspec.Struct):
    id: str
    action: str
    participants: list[ParticipantJson]
    author: str | None = None
    authorPn: str | None = None
