"""Change a group's settings: announce-only (only admins send) and locked info (only admins edit).

Admins only; each changed setting is one `w:g2` query.
"""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.metadata import require_admin
from bridge.ipc import groups as ipc


def plan_settings(jid: str, *, announce: bool | None, restrict: bool | None) -> list[ipc.GroupSettingArgs]:
    plan = []
    if announce is not None:
        plan.append(ipc.GroupSettingArgs(jid=jid, setting="announcement" if announce else "not_announcement"))
    if restrict is not None:
        plan.append(ipc.GroupSettingArgs(jid=jid, setting="locked" if restrict else "unlocked"))
    return plan


async def change_settings(ctx: GroupContext, jid: str, *, announce: bool | None, restrict: bool | None) -> None:
    plan = plan_settings(jid, announce=announce, restrict=restrict)
    if not plan:
        return
    await require_admin(ctx, jid, "change its settings")
    for args in plan:
        await ctx.call("group_setting", args, dict, group=jid)
