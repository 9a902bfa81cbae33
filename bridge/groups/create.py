"""Create a group with participants.

Plan: the participants are valid people (1..1023, no duplicates, not ourselves) and every phone
number among them is on WhatsApp (one check per 50 numbers, the message desk's); a number that is
not is refused with 404 naming it, before the group exists. Execute: one `w:g2 create`.
"""

from __future__ import annotations

from bridge.groups.context import GroupContext
from bridge.groups.model import GroupInfo
from bridge.groups.names import group_info
from bridge.groups.targets import InvalidParticipants, participant_jids
from bridge.ipc import groups as ipc
from bridge.ipc.messaging import MAX_NUMBERS_PER_CHECK
from bridge.messages.addresses import account, phone_of
from bridge.messages.errors import NotOnWhatsApp


async def plan_create(ctx: GroupContext, subject: str, participants: list[str]) -> ipc.GroupCreateArgs:
    jids = participant_jids(participants)
    me = account(ctx.me())
    if me is not None and me in jids:
        raise InvalidParticipants("participants: the account itself is the group's creator; leave it out")
    numbers = [n for n in (phone_of(j) for j in jids) if n]
    missing = []
    for start in range(0, len(numbers), MAX_NUMBERS_PER_CHECK):
        checks = await ctx.check_numbers(ctx.session, numbers[start:start + MAX_NUMBERS_PER_CHECK])
        missing += [c.number for c in checks if not c.on_whatsapp]
    if missing:
        raise NotOnWhatsApp(f"not on WhatsApp: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; "
                            "leave them out or check the numbers (country code first)")
    return ipc.GroupCreateArgs(subject=subject, participants=jids)


async def create_group(ctx: GroupContext, subject: str, participants: list[str]) -> GroupInfo:
    args = await plan_create(ctx, subject, participants)
    result = await ctx.call("group_create", args, ipc.GroupCreateResult)
    return group_info(result.group, ctx.lids)
