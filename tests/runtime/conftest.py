"""Fixtures for runtime tests: a harness wiring a real NodeProcess to real AuthStores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.config import Settings
from bridge.events import EventBus
from bridge.ipc import protocol as p
from bridge.runtime.auth_handler import AuthRequestHandler
from bridge.runtime.process import NodeProcess
from bridge.store.auth_store import AsyncAuthStore, AuthStore

CHILDREN = Path(__file__).resolve().parent / "children"


class Harness:
    """A NodeProcess whose auth requests go to real stores; records requests and events."""

    def __init__(self, settings: Settings, name: str, sessions: Sequence[str], *, bus: EventBus | None = None,
                 script: Path | None = None, node_args: Sequence[str] = (), extra_read: Sequence[Path] = ()) -> None:
        self.settings = settings
        self.handler = AuthRequestHandler()
        self.stores: dict[str, AuthStore] = {}
        for sid in sessions:
            self.host(sid)
        self.ops: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.event_hooks: list[Callable[[str, str, dict[str, Any]], None]] = []
        self.request_hooks: list[Callable[[p.Req, msgspec.Struct], None]] = []
        self.bus = bus or EventBus()
        self.proc = NodeProcess(settings, name, on_request=self._request, on_event=self._event, bus=self.bus,
                                sessions=self.handler, script=script, node_args=node_args, extra_read=extra_read)

    def host(self, sid: str) -> AuthStore:
        store = AuthStore(self.settings.auth_root / sid, session_id=sid, bridge_dir=self.settings.bridge_dir)
        self.stores[sid] = store
        self.handler.host(sid, AsyncAuthStore(store))
        return store

    async def _request(self, req: p.Req, args: msgspec.Struct) -> Any:
        self.ops.append((req.s, req.op))
        for hook in self.request_hooks:
            hook(req, args)  # may raise, to simulate a store that cannot make a write durable
        return await self.handler(req, args)

    def _event(self, evt: p.Evt, data: msgspec.Struct) -> None:
        self.events.append((evt.s, evt.name, evt.data))
        for hook in self.event_hooks:
            hook(evt.s, evt.name, evt.data)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 60.0, what: str = "condition") -> Any:
        """Poll `predicate` until truthy; generous timeouts, never a duration assertion."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; events={self.events[-10:]} "
                                     f"stderr={list(self.proc.stderr_tail)[-5:]}")
            await asyncio.sleep(0.05)

    def event(self, sid: str, name: str, pred: Callable[[dict[str, Any]], bool] = lambda d: True) -> Any:
        return next((d for s, n, d in self.events if s == sid and n == name and pred(d)), None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        auth_root=tmp_path / "auth",
        restart_backoff_initial=0.05,
        restart_backoff_max=0.2,
        stop_grace=5.0,
        term_grace=5.0,
        ipc_violations_per_minute=1_000_000,
        node_log_level="warn",
        runtime_heartbeat_interval=0,  # most stand-in children never answer a ping; see the heartbeat test
    )


@pytest.fixture
async def make_harness() -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(settings: Settings, name: str, sessions: Sequence[str] = (), **kw: Any) -> Harness:
        harness = Harness(settings, name, sessions or [name], **kw)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.proc.stop()
