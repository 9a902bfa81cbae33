"""Baileys' group objects -> the group model, naming people by phone number where known.

Every pair a participant entry reveals (`{id: pn, lid}` in phone-addressed groups, `{id: lid,
phoneNumber}` in LID-addressed ones) goes into the session's LID book, so a later message or event
that names the member only by LID still gets a phone number.
"""

from __future__ import annotations

from typing import Any

from bridge.groups.model import GroupInfo, Participant, Role
from bridge.messages.addresses import LidBook, account, is_lid, phone_of

_ROLES = {"admin": Role.ADMIN, "superadmin": Role.SUPERADMIN}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def participant(raw: dict[str, Any], lids: LidBook) -> Participant:
    """One Baileys `GroupParticipant` (`{id, phoneNumber, lid, admin}`) as a `Participant`."""
    jid = account(_str(raw.get("id")))
    lids.learn(jid, account(_str(raw.get("phoneNumber"))))
    lids.learn(jid, account(_str(raw.get("lid"))))
    lid = lids.lid(jid) or (jid if is_lid(jid) else None)
    return Participant(jid=lids.preferred(jid) or jid or "", phone=phone_of(lids.phone_jid(jid)), lid=lid,
                       role=_ROLES.get(str(raw.get("admin")), Role.MEMBER))


def person(jid: str | None, alt: str | None, lids: LidBook) -> tuple[str | None, str | None]:
    """(JID, phone) of someone named by `jid` and maybe its other address `alt` (an event's author)."""
    lids.learn(account(jid), account(alt))
    who = lids.preferred(jid) or lids.preferred(alt)
    return who, phone_of(lids.phone_jid(who))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def group_info(meta: dict[str, Any], lids: LidBook) -> GroupInfo:
    """Baileys' `GroupMetadata` as `GroupInfo`."""
    raw_participants = meta.get("participants")
    members = [participant(p, lids) for p in raw_participants or [] if isinstance(p, dict)]
    owner, _ = person(_str(meta.get("owner")), _str(meta.get("ownerPn")), lids)
    size = _int(meta.get("size")) or len(members)
    return GroupInfo(
        id=str(meta.get("id", "")), subject=_str(meta.get("subject")) or "", description=_str(meta.get("desc")),
        owner=owner, created=_int(meta.get("creation")), announce=bool(meta.get("announce")),
        restrict=bool(meta.get("restrict")), size=size, participants=members,
    )
