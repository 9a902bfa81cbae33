"""What every group operation works with: the session, its runtime, its LID book, number checks.

`GroupContext.call` is the one place a group command reaches Node: it encodes the already
validated args, and turns the server's refusals (IPC codes `group_*`, see `bridge.ipc.groups`)
into errors that name the group and say what to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec

from bridge.groups.errors import GroupNotFound, GroupRefused, InviteNotFound, NotGroupAdmin, NotGroupMember
from bridge.ipc.channel import CommandFailed
from bridge.messages.addresses import LidBook

T = TypeVar("T")


class SessionPort(Protocol):
    """What the group operations need from the sessions layer (the same port `MessageDesk` uses)."""

    def require_open(self, session: str) -> None: ...

    def me(self, session: str) -> str | None: ...

    def call(self, session: str, cmd: str, args: dict[str, Any]) -> Awaitable[Any]: ...


CheckNumbers = Callable[[str, list[str]], Awaitable[list[Any]]]
"""`MessageDesk.check_numbers`: per number, `on_whatsapp` (order kept)."""


@dataclass(frozen=True)
class GroupContext:
    session: str
    port: SessionPort
    lids: LidBook
    check_numbers: CheckNumbers

    def me(self) -> str | None:
        return self.port.me(self.session)

    async def call(self, cmd: str, args: msgspec.Struct | None, result: type[T], *, group: str = "") -> T:
        """Run `cmd` and decode its answer; refusals become group errors naming `group`."""
        payload = msgspec.to_builtins(args) if args is not None else {}
        try:
            raw = await self.port.call(self.session, cmd, payload)
        except CommandFailed as exc:
            raise refusal(exc, cmd, group) from None
        return msgspec.convert(raw, result)


def refusal(exc: CommandFailed, cmd: str, group: str) -> Exception:
    """The error a tenant sees for the server's answer `exc.code` to `cmd` on `group`."""
    code, what = exc.code, group or "the group"
    if cmd == "group_join" and code in ("group_not_found", "group_gone", "group_not_authorized", "group_forbidden"):
        return InviteNotFound("the invite code is unknown, revoked or expired; ask an admin of the group for a "
                              "new link")
    if code == "group_not_found":
        return GroupNotFound(f"WhatsApp knows no group {what}; list the session's groups for valid ids")
    if code == "group_forbidden":
        return NotGroupMember(f"this account is not in {what} (never joined, left or was removed); join it "
                              "first")
    if code == "group_not_authorized":
        return NotGroupAdmin(f"only admins of {what} may do this (or its info is locked to admins); ask an "
                             "admin to promote this account")
    if code.startswith("group_"):
        return GroupRefused(f"WhatsApp refused {cmd} on {what}: {exc.message}")
    return exc
