"""`GroupDesk`: the one entry point for group operations and group events of every session.

It holds no group state: Node keeps the bounded metadata cache Baileys sends with, WhatsApp keeps
the groups. It shares the message desk's session port, LID books and number checks, so a member
named by LID in a group event is named by phone number like the sender of a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from bridge.events import EventBus
from bridge.groups import events
from bridge.groups.context import CheckNumbers, GroupContext, SessionPort
from bridge.groups.create import create_group
from bridge.groups.description import set_description
from bridge.groups.invite import invite_code
from bridge.groups.join import join_group
from bridge.groups.leave import leave_group
from bridge.groups.listing import list_groups
from bridge.groups.metadata import get_metadata
from bridge.groups.model import GroupInfo, ParticipantAction, ParticipantResult
from bridge.groups.participants import change_participants
from bridge.groups.settings import change_settings
from bridge.groups.subject import set_subject
from bridge.groups.targets import group_jid
from bridge.messages.addresses import LidBook

log = logging.getLogger(__name__)
GROUP_EVENTS = events.GROUP_EVENTS


class GroupDesk:
    def __init__(self, bus: EventBus, sessions: SessionPort, lids: Callable[[str], LidBook],
                 check_numbers: CheckNumbers) -> None:
        self.bus = bus
        self.sessions = sessions
        self._lids = lids
        self._check_numbers = check_numbers

    def _ctx(self, session: str) -> GroupContext:
        self.sessions.require_open(session)
        return GroupContext(session, self.sessions, self._lids(session), self._check_numbers)

    # ----- events ------------------------------------------------------------------------------
    def on_runtime_event(self, session: str, name: str, data: msgspec.Struct) -> None:
        """Publish the events of one runtime group event (never raises)."""
        try:
            events.publish(self.bus, session, data, self.sessions.me(session), self._lids(session))
        except Exception:  # one odd event must not stop the session's other events
            log.exception("session %s: could not handle group event %s", session, name)

    # ----- operations --------------------------------------------------------------------------
    async def list_groups(self, session: str) -> list[GroupInfo]:
        return await list_groups(self._ctx(session))

    async def metadata(self, session: str, group: str) -> GroupInfo:
        return await get_metadata(self._ctx(session), group_jid(group))

    async def create(self, session: str, subject: str, participants: list[str]) -> GroupInfo:
        return await create_group(self._ctx(session), subject, participants)

    async def update(self, session: str, group: str, *, subject: str | None = None,
                     description: str | None = None, set_description_to: bool = False,
                     announce: bool | None = None, restrict: bool | None = None) -> GroupInfo:
        """Change what is given (subject, description when `set_description_to`, settings); answers the
        metadata after the change."""
        ctx, jid = self._ctx(session), group_jid(group)
        if subject is not None:
            await set_subject(ctx, jid, subject)
        if set_description_to:
            await set_description(ctx, jid, description)
        await change_settings(ctx, jid, announce=announce, restrict=restrict)
        return await get_metadata(ctx, jid)

    async def participants(self, session: str, group: str, action: ParticipantAction,
                           participants: list[str]) -> list[ParticipantResult]:
        return await change_participants(self._ctx(session), group_jid(group), action, participants)

    async def invite(self, session: str, group: str, *, revoke: bool = False) -> str:
        return await invite_code(self._ctx(session), group_jid(group), revoke=revoke)

    async def join(self, session: str, code: str) -> str:
        return await join_group(self._ctx(session), code)

    async def leave(self, session: str, group: str) -> None:
        await leave_group(self._ctx(session), group_jid(group))
