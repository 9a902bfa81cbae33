"""Add, remove, promote or demote participants, with one result per participant.

Plan: valid people (1..1023, no duplicates), the account is an admin (cached metadata, confirmed
with the server before refusing), and for remove/promote/demote everyone named is in the group
(else 404 naming them: nothing is sent). Execute: one `w:g2` query; WhatsApp answers per
participant, and `RESULTS` puts its code in words.
"""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.errors import ParticipantNotInGroup
from bridge.groups.metadata import find, require_admin
from bridge.groups.model import ParticipantAction, ParticipantResult
from bridge.groups.targets import participant_jids
from bridge.ipc import groups as ipc
from bridge.messages.addresses import account, phone_of

DONE = {ParticipantAction.ADD: "added", ParticipantAction.REMOVE: "removed", ParticipantAction.PROMOTE: "promoted",
        ParticipantAction.DEMOTE: "demoted"}
RESULTS = {"403": "privacy_blocked", "404": "not_on_whatsapp", "409": "already_in_group", "408": "recently_left",
           "401": "not_authorized", "406": "not_allowed", "500": "failed"}
"""WhatsApp's per-participant codes (403: their privacy settings allow only an invite link)."""


async def plan_change(ctx: GroupContext, jid: str, action: ParticipantAction,
                      participants: list[str]) -> ipc.GroupParticipantsArgs:
    jids = participant_jids(participants)
    info = await require_admin(ctx, jid, f"{action.value} participants")
    if action is not ParticipantAction.ADD:
        absent = [j for j in jids if find(info, j, ctx) is None]
        if absent:
            raise ParticipantNotInGroup(f"not in {jid}: {', '.join(absent[:20])}; only members can be "
                                        f"{DONE[action]}")
    return ipc.GroupParticipantsArgs(jid=jid, action=action.value, participants=jids)


def outcome(action: ParticipantAction, item: ipc.ParticipantOutcome, ctx: GroupContext) -> ParticipantResult:
    who = ctx.lids.preferred(item.jid) or account(item.jid) or item.jid
    if item.status == "200":
        result = DONE[action]
    elif item.status == "404" and action is not ParticipantAction.ADD:
        result = "not_in_group"
    else:
        result = RESULTS.get(item.status, "failed")
    return ParticipantResult(jid=who, phone=phone_of(ctx.lids.phone_jid(who)), status=item.status, result=result)


async def change_participants(ctx: GroupContext, jid: str, action: ParticipantAction,
                              participants: list[str]) -> list[ParticipantResult]:
    args = await plan_change(ctx, jid, action, participants)
    result = await ctx.call("group_participants", args, ipc.GroupParticipantsResult, group=jid)
    return [outcome(action, item, ctx) for item in result.results]
