"""Change a group's subject (members may, unless the info is locked to admins)."""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.metadata import require_info_editor
from bridge.ipc import groups as ipc


async def set_subject(ctx: GroupContext, jid: str, subject: str) -> None:
    args = ipc.GroupSubjectArgs(jid=jid, subject=subject)
    await require_info_editor(ctx, jid, "change the subject")
    await ctx.call("group_subject", args, dict, group=jid)
