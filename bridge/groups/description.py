"""Set or remove a group's description (members may, unless the info is locked to admins)."""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.metadata import require_info_editor
from bridge.ipc import groups as ipc


async def set_description(ctx: GroupContext, jid: str, description: str | None) -> None:
    """`description` None or "" removes it."""
    args = ipc.GroupDescriptionArgs(jid=jid, description=description or None)
    await require_info_editor(ctx, jid, "change the description")
    await ctx.call("group_description", args, dict, group=jid)
