"""Which group and which people a request names, checked before anything reaches Node.

A group is a group JID (`120363012345678901@g.us`) or its digits alone; a participant is a phone
number, a user JID or a LID (`bridge.messages.recipients`). Refused with 400 naming the entry and
what to send instead: anything else (a group as a participant, device JIDs), duplicates, an empty
list and more than a group holds.
"""

from __future__ import annotations

from bridge.errors import ErrorCode, SessionError
from bridge.ipc.groups import MAX_PARTICIPANTS
from bridge.messages.recipients import InvalidRecipient, RecipientKind, parse_recipient


class InvalidParticipants(SessionError):
    code: str = ErrorCode.INVALID_RECIPIENT


def group_jid(value: str) -> str:
    """The group JID `value` names, or `InvalidRecipient` (400)."""
    text = value.strip()
    candidate = text if "@" in text else f"{text}@g.us"
    try:
        recipient = parse_recipient(candidate, field="group")
    except InvalidRecipient:
        recipient = None
    if recipient is None or recipient.kind is not RecipientKind.GROUP:
        raise InvalidRecipient(f"group: {value[:80]!r} is not a group JID; use the id the group list gives "
                               "(120363012345678901@g.us)")
    return recipient.jid


def participant_jids(values: list[str], *, field: str = "participants") -> list[str]:
    """The user JIDs or LIDs of `values`, order kept; `InvalidParticipants` (400) for any bad entry."""
    if not values:
        raise InvalidParticipants(f"{field}: name at least one participant (phone number or JID)")
    if len(values) > MAX_PARTICIPANTS:
        raise InvalidParticipants(f"{field}: {len(values)} participants; a group holds at most "
                                  f"{MAX_PARTICIPANTS + 1} members including you")
    jids: list[str] = []
    for index, value in enumerate(values):
        where = f"{field}[{index}]"
        recipient = parse_recipient(value, field=where)
        if recipient.kind is RecipientKind.GROUP:
            raise InvalidParticipants(f"{where}: {value!r} is a group; participants are people (phone number, "
                                      "user JID or LID)")
        if recipient.jid in jids:
            raise InvalidParticipants(f"{where}: {value!r} is named twice")
        jids.append(recipient.jid)
    return jids
