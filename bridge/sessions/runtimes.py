"""Which Node process hosts which session: pools of K (default 25) or one per session.

K > 1 fills `pool-0`, `pool-1`, ... up to K sessions each: one Node process with Baileys costs ~130
MiB hosting one socket, so pooling brings a tenant from that to a few (docs/sessions.md "Scale",
measured by scripts/bench_sessions.py), at the price that a runtime crash drops the K sessions it
hosts (they reconnect on their own, same creds, no QR, within seconds).
`BRIDGE_SESSIONS_PER_RUNTIME=1` gives every tenant its own process named after the session, so a
crash touches one tenant. Either way every auth request goes through the slot's
`AuthRequestHandler`, which refuses sessions the process does not host.

A process is stopped with `NodeProcess.stop()` when its last session leaves, never with a bare
`stop` command: the runtime exits by itself once it hosts nothing, and the supervisor would read
that as a crash and restart it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import msgspec

from bridge.config import Settings
from bridge.errors import SessionStateError
from bridge.events import EventBus
from bridge.ipc import protocol as p
from bridge.messages.store_getmessage import GetMessageAnswer
from bridge.runtime.auth_handler import AuthPort, AuthRequestHandler
from bridge.runtime.process import NodeProcess, ProcessState

log = logging.getLogger(__name__)


class RuntimeListener(Protocol):
    """What a runtime slot tells the session it hosts. Every method must return at once (they
    run on the IPC reader and the process supervisor): a session only queues what it hears."""

    @property
    def id(self) -> str:
        """The hosted session's id (the `s` of its IPC messages)."""

    def on_runtime_event(self, name: str, data: msgspec.Struct) -> None:
        """A validated event of this session from its runtime (connection.update, qr, ...)."""

    def runtime_exited(self, detail: str) -> None:
        """The process died unexpectedly; its supervisor restarts it with backoff."""

    def runtime_restarted(self) -> None:
        """The process runs again after `runtime_exited`, hosting no socket: start it anew."""

    def runtime_fatal(self, detail: str) -> None:
        """The supervisor gave the process up (crash loop); no more automatic restarts."""


class RuntimeSlot:
    """One Node process, the sessions it hosts, and the routing of its events to them."""

    def __init__(self, settings: Settings, name: str, bus: EventBus) -> None:
        self.name = name
        self.auth = AuthRequestHandler(messages=GetMessageAnswer(bus))
        self.sessions: dict[str, RuntimeListener] = {}
        self.leaving: dict[str, RuntimeListener] = {}
        """Sessions being stopped here: no longer hosted (the last one out stops the process), but
        still given their events until the stop returns. A message the runtime forwards while the
        socket closes must reach the message desk: its `message.durable` lets Baileys commit the
        message's keys, and a message dropped here would be gone (its keys used, never stored)."""
        self.process = NodeProcess(
            settings, name, on_request=self.auth, on_event=self._on_event, on_state=self._on_state,
            bus=bus, sessions=self.auth,
        )
        self._crashed = False

    @property
    def restarts(self) -> int:
        return self.process.restarts

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def _on_event(self, evt: p.Evt, data: msgspec.Struct) -> None:
        session = self.sessions.get(evt.s) or self.leaving.get(evt.s)
        if session is not None:
            session.on_runtime_event(evt.name, data)

    def _on_state(self, state: ProcessState, reason: str) -> None:
        listeners = list(self.sessions.values())
        if state is ProcessState.EXITED:
            self._crashed = True
            for listener in listeners:
                listener.runtime_exited(reason)
        elif state is ProcessState.RUNNING and self._crashed:
            self._crashed = False
            for listener in listeners:
                listener.runtime_restarted()
        elif state is ProcessState.FATAL:
            for listener in listeners:
                listener.runtime_fatal(reason)


class RuntimePool:
    """Assigns sessions to runtime slots and forwards their commands."""

    def __init__(self, settings: Settings, bus: EventBus) -> None:
        self.settings = settings
        self.bus = bus
        self.per_runtime = max(1, settings.sessions_per_runtime)
        self._slots: dict[str, RuntimeSlot] = {}
        self._by_session: dict[str, RuntimeSlot] = {}
        self._lock = asyncio.Lock()

    def slot_of(self, session_id: str) -> RuntimeSlot | None:
        return self._by_session.get(session_id)

    def _pick(self, session_id: str) -> RuntimeSlot:
        if self.per_runtime == 1:
            return self._slots.get(session_id) or self._new_slot(session_id)
        for slot in self._slots.values():
            if len(slot.sessions) < self.per_runtime and slot.process.state is not ProcessState.FATAL:
                return slot
        index = 0
        while f"pool-{index}" in self._slots:
            index += 1
        return self._new_slot(f"pool-{index}")

    def _new_slot(self, name: str) -> RuntimeSlot:
        slot = RuntimeSlot(self.settings, name, self.bus)
        self._slots[name] = slot
        return slot

    async def attach(self, session: RuntimeListener, store: AuthPort) -> RuntimeSlot:
        """Host `session` in a runtime (starting it if needed) so a `start` can follow.

        Only the choice of slot is serialised; process start-up (a second or two of Node loading
        Baileys) runs outside the lock so many tenants start in parallel.
        """
        stale: RuntimeSlot | None = None
        async with self._lock:
            slot = self._by_session.get(session.id)
            if slot is not None and slot.process.state is ProcessState.FATAL:
                stale, slot = slot, None
                self._forget(stale, session.id)
            if slot is None:
                slot = self._pick(session.id)
                self._by_session[session.id] = slot
            slot.sessions[session.id] = session
            slot.auth.host(session.id, store)
        if stale is not None:
            await stale.process.stop()
        if slot.process.state is not ProcessState.RUNNING:
            await slot.process.start()
        return slot

    async def detach(self, session: RuntimeListener) -> None:
        """Stop `session` in its runtime; stop the runtime when it hosts nothing else.

        The session leaves the slot under the lock, so of several sessions detaching at once
        exactly one sees the slot empty and stops the process (none is left running unowned).
        """
        async with self._lock:
            slot = self._by_session.pop(session.id, None)
            if slot is None:
                return
            listener = slot.sessions.pop(session.id, None)
            if listener is not None:
                slot.leaving[session.id] = listener
            last = not slot.sessions
            if last and self._slots.get(slot.name) is slot:
                del self._slots[slot.name]
        try:
            if last:
                await slot.process.stop()
            elif slot.process.state is ProcessState.RUNNING:
                await slot.process.call(session.id, "stop", {}, self.settings.stop_grace)
        finally:
            slot.auth.release(session.id)
            if listener is not None and slot.leaving.get(session.id) is listener:
                del slot.leaving[session.id]

    def _forget(self, slot: RuntimeSlot, session_id: str) -> None:
        slot.auth.release(session_id)
        slot.sessions.pop(session_id, None)
        self._by_session.pop(session_id, None)
        if not slot.sessions and self._slots.get(slot.name) is slot:
            del self._slots[slot.name]

    async def call(self, session_id: str, cmd: str, args: dict[str, Any], timeout: float) -> Any:  # noqa: ASYNC109
        slot = self._by_session.get(session_id)
        if slot is None:
            raise SessionStateError(f"session {session_id} has no running runtime; start it first")
        return await slot.process.call(session_id, cmd, args, timeout)

    async def close(self) -> None:
        """Stop every runtime (used by shutdown after the sessions stopped)."""
        async with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
            self._by_session.clear()
        await asyncio.gather(*(s.process.stop() for s in slots), return_exceptions=True)
