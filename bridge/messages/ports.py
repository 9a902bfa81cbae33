"""`ManagerPort`: the `SessionPort` of `MessageDesk` over the `SessionManager` (public API only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import SessionStateError
from bridge.messages.store import MessageRetention
from bridge.sessions.state import SessionState

if TYPE_CHECKING:
    from bridge.sessions.manager import SessionManager


class ManagerPort:
    def __init__(self, manager: SessionManager) -> None:
        self._manager = manager

    def require_open(self, session: str) -> None:
        info = self._manager.get(session)
        if info.state != SessionState.OPEN.value:
            raise SessionStateError(
                f"session {session} is {info.state}, not open; start it and wait for state 'open' before sending"
            )

    def me(self, session: str) -> str | None:
        return self._manager.get(session).me

    async def call(self, session: str, cmd: str, args: dict[str, Any]) -> Any:
        timeout = self._manager.settings.ipc_request_timeout
        return await self._manager.runtimes.call(session, cmd, args, timeout)

    def retention(self) -> MessageRetention:
        settings = self._manager.settings
        return MessageRetention(max_age=settings.message_retention_days * 86400.0,
                                keep=settings.message_retention_count)
