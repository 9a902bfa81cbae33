"""Phone numbers and JIDs as the bridge accepts them.

Baileys' `requestPairingCode` wants the number in international form, digits only, no `+`, no
leading zeros; a wrong number silently produces a code the phone will never accept, so we refuse
bad input early with a message saying what form is expected.
"""

from __future__ import annotations

import re

from bridge.errors import SessionError

_PHONE = re.compile(r"[1-9][0-9]{6,14}")
_JID = re.compile(r"[0-9A-Za-z.:_-]{1,64}@(s\.whatsapp\.net|g\.us|lid|broadcast|newsletter|c\.us)")

USER_SERVER = "s.whatsapp.net"


def validate_phone(phone: str) -> str:
    """Return the phone number as digits with country code, or raise `SessionError`.

    A single leading `+` is tolerated and dropped (people copy numbers that way); spaces, dashes,
    brackets and national forms with a leading 0 are refused because guessing the country code
    would link the wrong number.
    """
    candidate = phone.strip()
    if candidate.startswith("+"):
        candidate = candidate[1:]
    if not _PHONE.fullmatch(candidate):
        raise SessionError(
            f"invalid phone number {phone!r}: give the international number as digits only, country code "
            "first, no spaces or leading zero (e.g. 4915123456789 for +49 151 23456789)",
            code="invalid_phone",
        )
    return candidate


def to_jid(to: str) -> str:
    """A recipient as a JID: a phone number becomes `<digits>@s.whatsapp.net`, a JID is checked."""
    value = to.strip()
    if "@" in value:
        if not _JID.fullmatch(value):
            raise SessionError(
                f"invalid recipient {to!r}: use a phone number (digits with country code) or a JID such as "
                "4915123456789@s.whatsapp.net or 123456789-123456@g.us",
                code="invalid_recipient",
            )
        return value
    try:
        return f"{validate_phone(value)}@{USER_SERVER}"
    except SessionError as exc:
        raise SessionError(
            f"invalid recipient {to!r}: use a phone number (digits with country code) or a JID such as "
            "4915123456789@s.whatsapp.net",
            code="invalid_recipient",
        ) from exc
