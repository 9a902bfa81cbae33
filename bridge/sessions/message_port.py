"""`ManagerPort`: the `SessionPort` of `MessageDesk` over the sessions layer.

It lives on the sessions side so that messages never import sessions: the desk only knows the
`SessionPort` protocol. It is built from the manager's parts (its session lookup, the settings and
the runtime pool) rather than from the manager itself, so neither module imports the other. It
reads a session's state and account directly: every send asks both, and a `SessionInfo` costs
seventeen fields to build for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.config import Settings
from bridge.errors import SessionStateError
from bridge.messages.store import MessageRetention
from bridge.sessions.state import SessionState

if TYPE_CHECKING:
    from bridge.sessions.runtimes import RuntimePool
    from bridge.sessions.session import Session


class ManagerPort:
    def __init__(self, get: Callable[[str], Session], settings: Settings, runtimes: RuntimePool) -> None:
        self._get = get
        self._settings = settings
        self._runtimes = runtimes

    def require_open(self, session: str) -> None:
        state = self._get(session).state
        if state is not SessionState.OPEN:
            raise SessionStateError(
                f"session {session} is {state.value}, not open; start it and wait for state 'open' before sending"
            )

    def me(self, session: str) -> str | None:
        return self._get(session).me

    async def call(self, session: str, cmd: str, args: dict[str, Any]) -> Any:
        timeout = self._settings.ipc_request_timeout
        if cmd == "send":
            # the request must outlive the runtime's ack wait, or the caller sees a bare IPC
            # timeout instead of `no_server_ack`
            timeout = max(timeout, self._settings.send_ack_timeout + 10.0)
        return await self._runtimes.call(session, cmd, args, timeout)

    def retention(self) -> MessageRetention:
        return MessageRetention(max_age=self._settings.message_retention_days * 86400.0,
                                keep=self._settings.message_retention_count)
