"""A group's invite link: read it (admins), revoke it (admins; a new code replaces it)."""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.errors import GroupRefused
from bridge.groups.metadata import require_admin
from bridge.ipc import groups as ipc

LINK_PREFIX = "https://chat.whatsapp.com/"


def link(code: str) -> str:
    return LINK_PREFIX + code


async def invite_code(ctx: GroupContext, jid: str, *, revoke: bool = False) -> str:
    await require_admin(ctx, jid, "revoke its invite link" if revoke else "read its invite link")
    cmd = "group_revoke_invite" if revoke else "group_invite_code"
    result = await ctx.call(cmd, ipc.GroupJidArgs(jid=jid), ipc.InviteCodeResult, group=jid)
    if not result.code:
        raise GroupRefused(f"WhatsApp gave no invite code for {jid}")
    return result.code
