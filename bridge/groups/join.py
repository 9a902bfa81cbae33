"""Join a group by invite code or link (`https://chat.whatsapp.com/<code>`)."""

from __future__ import annotations

import re

from bridge.groups.context import GroupContext
from bridge.groups.errors import InvalidInviteCode, InviteNotFound
from bridge.groups.invite import LINK_PREFIX
from bridge.ipc import groups as ipc

_CODE = re.compile(r"[A-Za-z0-9_-]{6,64}")


def invite_from(value: str) -> str:
    """The code of an invite code or link; 400 for anything else."""
    text = value.strip()
    if text.startswith(LINK_PREFIX):
        text = text[len(LINK_PREFIX):].split("?", 1)[0].rstrip("/")
    if not _CODE.fullmatch(text):
        raise InvalidInviteCode(f"code: {value[:80]!r} is not an invite code or {LINK_PREFIX}<code> link")
    return text


async def join_group(ctx: GroupContext, code: str) -> str:
    """The JID of the group joined."""
    args = ipc.GroupJoinArgs(code=invite_from(code))
    result = await ctx.call("group_join", args, ipc.GroupJoinResult)
    if not result.jid:
        raise InviteNotFound("WhatsApp accepted the code but named no group; ask for a new link")
    return result.jid if "@" in result.jid else f"{result.jid}@g.us"
