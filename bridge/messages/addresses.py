"""Who is who: JIDs reduced to accounts, and each session's LID <-> phone number book.

WhatsApp (and Baileys 7) may address a contact by a LID (`<digits>@lid`, a privacy id) instead of
the phone-number JID. A tenant needs the phone number to know who wrote, so every pair WhatsApp
reveals (`remoteJidAlt`, `participantAlt`, check-number answers, our own `me`) is remembered per
session and used to give `sender_phone` when a later message carries only the LID.

The book lives in memory for the life of the bridge process (bounded); Baileys keeps its own copy
in the auth folder (`lid-mapping-*` keys), so after a restart the first message of each contact
teaches it again (WhatsApp sends the pair with every LID-addressed message).
"""

from __future__ import annotations

from collections import OrderedDict

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
MAX_PAIRS = 100_000


def account(jid: str | None) -> str | None:
    """`jid` without device and agent (`123:4@s.whatsapp.net` -> `123@s.whatsapp.net`); `c.us` -> s.whatsapp.net."""
    if not jid or "@" not in jid:
        return None
    user, _, server = jid.partition("@")
    user = user.split(":", 1)[0].split("_", 1)[0]
    if server == "c.us":
        server = USER_SERVER
    return f"{user}@{server}" if user else None


def is_lid(jid: str | None) -> bool:
    return bool(jid) and str(jid).endswith("@" + LID_SERVER)


def is_user(jid: str | None) -> bool:
    return bool(jid) and str(jid).endswith("@" + USER_SERVER)


def phone_of(jid: str | None) -> str | None:
    """The digits of a phone-number JID (None for LIDs, groups, anything else)."""
    return jid.split("@", 1)[0] if jid and is_user(jid) else None


class LidBook:
    """One session's LID -> phone-number JID pairs (account JIDs), newest kept when full."""

    def __init__(self, limit: int = MAX_PAIRS) -> None:
        self._pn_of_lid: OrderedDict[str, str] = OrderedDict()
        self._lid_of_pn: dict[str, str] = {}
        self._limit = limit

    def learn(self, a: str | None, b: str | None) -> None:
        """Remember that `a` and `b` (one a LID, the other a phone JID, in either order) are one account."""
        a, b = account(a), account(b)
        lid, pn = (a, b) if is_lid(a) else (b, a)
        if not lid or not pn or not is_lid(lid) or not is_user(pn):
            return
        self._pn_of_lid[lid] = pn
        self._pn_of_lid.move_to_end(lid)
        self._lid_of_pn[pn] = lid
        while len(self._pn_of_lid) > self._limit:
            old_lid, old_pn = self._pn_of_lid.popitem(last=False)
            if self._lid_of_pn.get(old_pn) == old_lid:
                del self._lid_of_pn[old_pn]

    def phone_jid(self, jid: str | None) -> str | None:
        """The phone JID of `jid` (itself when it is one), None when only an unknown LID."""
        acc = account(jid)
        if acc is None:
            return None
        if is_user(acc):
            return acc
        return self._pn_of_lid.get(acc) if is_lid(acc) else None

    def lid(self, jid: str | None) -> str | None:
        acc = account(jid)
        if acc is None:
            return None
        return acc if is_lid(acc) else self._lid_of_pn.get(acc)

    def preferred(self, jid: str | None) -> str | None:
        """How the bridge names an account: its phone JID when known, else what was given."""
        return self.phone_jid(jid) or account(jid)
