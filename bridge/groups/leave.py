"""Leave a group (the other members see the account as `left`)."""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.ipc import groups as ipc


async def leave_group(ctx: GroupContext, jid: str) -> None:
    await ctx.call("group_leave", ipc.GroupJidArgs(jid=jid), dict, group=jid)
