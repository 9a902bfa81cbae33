"""Answers a runtime's auth requests from the right session's store, and only for hosted sessions.

Why a separate object: the runtime process knows nothing about files, the store knows nothing
about IPC. This is the one place that decides which folder a request may touch: a request naming a
session this runtime does not host is refused (`ProtocolError`, counted as a violation by the
channel), so a pooled runtime serving tenants A and B can never read or write tenant C.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

import msgspec

from bridge.errors import ProtocolError
from bridge.ipc import messaging as m
from bridge.ipc import protocol as p

MessageSource = Callable[[str, m.GetMessageArgs | m.MessageDurableArgs], Awaitable[Any]]
"""Answers `message.get` and `message.durable` (bridge.messages.store_getmessage.GetMessageAnswer)."""


class AuthPort(Protocol):
    """The four things a runtime may ask of a session's folder (`AuthPort` is one; the
    sessions layer wraps it to add its own rules)."""

    async def load_creds(self) -> str | None:
        """creds.json text, None when there is none."""

    async def get_keys(self, key_type: str, ids: list[str]) -> dict[str, str | None]:
        """Exact JSON text of each key file (None = absent)."""

    async def set_keys(self, batch: Mapping[str, Mapping[str, str | None]]) -> None:
        """Write a batch durably (None = delete); returns only once durable."""

    async def save_creds(self, text: str) -> None:
        """Replace creds.json durably."""


class AuthRequestHandler:
    """Maps `auth.load|auth.get|auth.set|creds.save` to the session's `AuthPort`.

    Use `host(session, store)` before sending the runtime a `start` for that session and
    `release(session)` after stopping it. Works as the channel's `on_request` and as its
    `sessions` container (`"a" in handler`).
    """

    def __init__(self, messages: MessageSource | None = None) -> None:
        self._stores: dict[str, AuthPort] = {}
        self._messages = messages

    def host(self, session: str, store: AuthPort) -> None:
        """Allow the runtime to read and write `session`'s folder through `store`."""
        self._stores[session] = store

    def release(self, session: str) -> None:
        """Refuse further requests for `session` (after it was stopped or moved)."""
        self._stores.pop(session, None)

    def __contains__(self, session: object) -> bool:
        return session in self._stores

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._stores))

    def __len__(self) -> int:
        return len(self._stores)

    async def __call__(self, req: p.Req, args: msgspec.Struct) -> Any:
        """Serve one validated request; `auth.set`/`creds.save` return only once durable."""
        store = self._stores.get(req.s)
        if store is None:
            raise ProtocolError(
                f"runtime asked {req.op} for session {req.s!r}, which it does not host; refused. "
                "If this repeats, the runtime is confused or hostile and will be restarted"
            )
        if isinstance(args, p.AuthGetArgs):
            return await store.get_keys(args.type, list(args.ids))
        if isinstance(args, p.AuthSetArgs):
            count = sum(len(v) for v in args.data.values())
            if count > p.MAX_KEYS_PER_SET:
                raise p.MessageRejected(f"auth.set batch of {count} values exceeds {p.MAX_KEYS_PER_SET}",
                                        kind="bad_args", msg_id=req.id, session=req.s)
            await store.set_keys(args.data)
            return None
        if isinstance(args, p.CredsSaveArgs):
            await store.save_creds(args.creds)
            return None
        if req.op == "auth.load":
            return await store.load_creds()
        if isinstance(args, m.GetMessageArgs):
            return await self._messages(req.s, args) if self._messages is not None else None
        if isinstance(args, m.MessageDurableArgs):
            return await self._messages(req.s, args) if self._messages is not None else m.MessageDurableResult(False)
        raise p.MessageRejected(f"unknown request op {req.op!r}", kind="unknown_op", msg_id=req.id, session=req.s)
