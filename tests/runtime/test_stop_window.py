"""A session stopped while its runtime still handles a message: the message reaches the session
(and through it the message desk) before the runtime's `message.durable` is answered.

Why it matters: that answer lets Baileys commit the message's Signal keys. The pool used to forget
a stopping session's listener before its runtime had closed the socket, so a message the runtime
forwarded in that window was dropped while `message.durable` still said yes: keys used, message
never stored, the copy WhatsApp delivers again undecryptable ("Key used already"). It was seen in
a cluster rolling restart (tests/cluster/test_rolling_restart.py). The stand-in runtime
(children/stop_window.mjs) does exactly what a real one does in that window, on the real IPC.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec

from bridge.config import Settings
from bridge.events import EventBus
from bridge.ipc import messaging as m
from bridge.sessions.runtimes import RuntimePool
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from tests.runtime.conftest import CHILDREN


class Recorder:
    """The pool's view of a session (`RuntimeListener`): what the runtime sent it."""

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.events: list[tuple[str, msgspec.Struct]] = []

    def on_runtime_event(self, name: str, data: msgspec.Struct) -> None:
        self.events.append((name, data))

    def runtime_exited(self, detail: str) -> None:
        pass

    def runtime_restarted(self) -> None:
        pass

    def runtime_fatal(self, detail: str) -> None:
        pass

    def upserted(self) -> list[str]:
        return [msg["key"]["id"] for name, data in self.events
                if isinstance(data, m.UpsertData) and name == "messages.upsert" for msg in data.messages]


async def test_a_message_forwarded_while_its_session_stops_reaches_the_session(settings: Settings,
                                                                               tmp_path: Path) -> None:
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    shutil.copy(CHILDREN / "stop_window.mjs", runtime_dir / "index.mjs")
    pool = RuntimePool(settings.model_copy(update={"node_runtime_dir": runtime_dir, "sessions_per_runtime": 2}),
                       EventBus())
    sessions = [Recorder("first"), Recorder("last")]
    stores = [AuthStore(settings.auth_root / s.id, session_id=s.id, bridge_dir=settings.bridge_dir) for s in sessions]
    try:
        slots = [await pool.attach(s, AsyncAuthStore(store)) for s, store in zip(sessions, stores, strict=True)]
        assert slots[0] is slots[1]  # one runtime: the first stops by command, the last with the process
        process = slots[0].process

        for session in sessions:
            await pool.detach(session)
            assert session.upserted() == [f"STOPWINDOW{session.id}"], session.events

        reports = [json.loads(line.split("STOP_WINDOW ", 1)[1]) for line in process.stderr_tail
                   if "STOP_WINDOW " in line]
        assert reports == [{"s": "first", "ok": True}, {"s": "last", "ok": True}]
        assert pool.slot_of("first") is None and pool.slot_of("last") is None
        assert not slots[0].leaving  # once stopped, a session is no longer given events
    finally:
        await pool.close()
        for store in stores:
            store.close()
