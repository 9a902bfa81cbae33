"""Recipients a tenant may name, turned into the JID Baileys sends to.

Accepted: a phone number (digits with country code, one leading `+` tolerated), a user JID
(`<digits>@s.whatsapp.net`, or the old `@c.us`), a LID (`<digits>@lid`) and a group JID
(`<digits>@g.us`, or the old `<creator>-<time>@g.us`). Refused with `invalid_recipient` (400),
saying what to send instead: device JIDs (`:<n>`), broadcast lists, newsletters, anything else.
Nothing refused here ever reaches Node.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bridge.errors import ErrorCode, SessionError

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"

_PHONE = re.compile(r"[1-9][0-9]{6,14}")
_USER = re.compile(r"([1-9][0-9]{6,14})@(s\.whatsapp\.net|c\.us)")
_LID = re.compile(r"([0-9]{1,20})@lid")
_GROUP = re.compile(r"([0-9]{5,20}(?:-[0-9]{5,20})?)@g\.us")

HINT = ("use a phone number with country code (4915123456789), a user JID (4915123456789@s.whatsapp.net), "
        "a LID (123456789012345@lid) or a group JID (120363012345678901@g.us)")


class RecipientKind(enum.StrEnum):
    USER = "user"
    LID = "lid"
    GROUP = "group"


@dataclass(frozen=True)
class Recipient:
    jid: str
    kind: RecipientKind

    @property
    def phone(self) -> str | None:
        """The phone number of a user recipient (None for LIDs and groups)."""
        return self.jid.split("@", 1)[0] if self.kind is RecipientKind.USER else None


class InvalidRecipient(SessionError):
    code: str = ErrorCode.INVALID_RECIPIENT


def parse_recipient(value: str, *, field: str = "to") -> Recipient:
    """`value` as a `Recipient`, or `InvalidRecipient` naming the field and what to send instead."""
    text = value.strip()
    if text.startswith("+"):
        text = text[1:]
    if _PHONE.fullmatch(text):
        return Recipient(f"{text}@{USER_SERVER}", RecipientKind.USER)
    if (m := _USER.fullmatch(text)) is not None:
        return Recipient(f"{m.group(1)}@{USER_SERVER}", RecipientKind.USER)
    if (m := _LID.fullmatch(text)) is not None:
        return Recipient(f"{m.group(1)}@{LID_SERVER}", RecipientKind.LID)
    if (m := _GROUP.fullmatch(text)) is not None:
        return Recipient(f"{m.group(1)}@{GROUP_SERVER}", RecipientKind.GROUP)
    raise InvalidRecipient(f"{field}: {_why(value)}; {HINT}")


def _why(value: str) -> str:
    shown = repr(value[:80])
    if not value.strip():
        return "no recipient given"
    if "@" not in value:
        return f"{shown} is not a phone number (digits only, country code first, no leading 0, 7-15 digits)"
    user, _, server = value.strip().partition("@")
    if ":" in user:
        return f"{shown} names one device; send to the account ({user.split(':', 1)[0]}@{server})"
    if server in ("broadcast", "newsletter"):
        return f"{shown}: sending to {server} JIDs is not supported"
    return f"{shown} is not a JID the bridge sends to"
