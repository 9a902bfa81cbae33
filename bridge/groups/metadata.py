"""One group's metadata, and the admin check the admin-only operations make before they act.

The check reads the runtime's cached metadata (no server query when the group was seen); a cached
"not an admin" or "not a member" is confirmed with the server before refusing, so a stale cache
never refuses what WhatsApp would allow.
"""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.errors import NotGroupAdmin, NotGroupMember
from bridge.groups.model import GroupInfo, Participant, Role
from bridge.groups.names import group_info
from bridge.ipc import groups as ipc
from bridge.messages.addresses import account


async def get_metadata(ctx: GroupContext, jid: str, *, cached: bool = False) -> GroupInfo:
    result = await ctx.call("group_metadata", ipc.GroupMetadataArgs(jid=jid, cached=cached),
                            ipc.GroupMetadataResult, group=jid)
    return group_info(result.group, ctx.lids)


def find(info: GroupInfo, jid: str | None, ctx: GroupContext) -> Participant | None:
    """The member `jid` names (by phone JID or LID), or None."""
    acc = account(jid)
    if acc is None:
        return None
    wanted = {acc, ctx.lids.preferred(acc), ctx.lids.lid(acc)} - {None}
    return next((p for p in info.participants if {p.jid, p.lid} & wanted), None)


async def require_admin(ctx: GroupContext, jid: str, action: str) -> GroupInfo:
    """The group's metadata if the account is an admin of it; else `NotGroupAdmin`/`NotGroupMember` (403)."""
    info = await get_metadata(ctx, jid, cached=True)
    me = find(info, ctx.me(), ctx)
    if me is None or me.role is Role.MEMBER:
        info = await get_metadata(ctx, jid)
        me = find(info, ctx.me(), ctx)
    if me is None:
        raise NotGroupMember(f"this account is not in {jid} ({info.subject!r}); it cannot {action}")
    if me.role is Role.MEMBER:
        raise NotGroupAdmin(f"only admins of {jid} ({info.subject!r}) may {action}; this account is a member: "
                            "ask an admin to promote it")
    return info


async def require_info_editor(ctx: GroupContext, jid: str, action: str) -> GroupInfo:
    """Members edit subject and description unless the info is locked (`restrict`): then admins only."""
    info = await get_metadata(ctx, jid, cached=True)
    me = find(info, ctx.me(), ctx)
    if me is None or (info.restrict and me.role is Role.MEMBER):
        return await require_admin(ctx, jid, action) if info.restrict else await _member(ctx, jid, action)
    return info


async def _member(ctx: GroupContext, jid: str, action: str) -> GroupInfo:
    info = await get_metadata(ctx, jid)
    if find(info, ctx.me(), ctx) is None:
        raise NotGroupMember(f"this account is not in {jid} ({info.subject!r}); it cannot {action}")
    return info
