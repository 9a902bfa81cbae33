"""List the groups the account is in (one `w:g2 participating` query; refreshes Node's cache)."""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.model import GroupInfo
from bridge.groups.names import group_info
from bridge.ipc import groups as ipc


async def list_groups(ctx: GroupContext) -> list[GroupInfo]:
    result = await ctx.call("group_list", None, ipc.GroupListResult)
    groups = [group_info(meta, ctx.lids) for meta in result.groups]
    return sorted(groups, key=lambda g: (g.subject.casefold(), g.id))
