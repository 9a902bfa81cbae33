"""Shared helpers of the monitor suite: real legacy folders, a running watcher, damage from outside.

Damage is always done by another process (`rm`, `truncate`, `cp`), the way accidents happen in
production, and so the in-process audit hook only ever judges the monitor's own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import PROJECT_ROOT, Settings
from bridge.events import Event, EventBus
from bridge.monitor.watcher import AuthWatcher, SessionControl
from bridge.store.snapshots import Snapshots

LEGACY_TENANT = PROJECT_ROOT / "tests" / "monitor" / "node" / "legacy_tenant.mjs"


def node() -> str:
    found = shutil.which("node")
    assert found, "node is not on PATH; the monitor tests need real Node and Baileys"
    return found


def make_legacy_folder(folder: Path, prekeys: int = 20, *, fresh: bool = False) -> dict[str, Any]:
    """Write `folder` with real Baileys useMultiFileAuthState (tests/monitor/node/legacy_tenant.mjs)."""
    args = [node(), str(LEGACY_TENANT), "make", str(folder), str(prekeys)] + (["fresh"] if fresh else [])
    proc = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def copy_folder(src: Path, dst: Path) -> None:
    """Copy by another process (`cp -a`): only adds files."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def damage(*shell: str) -> None:
    """Run a damaging shell command in another process (what the legacy monitor did)."""
    subprocess.run(["sh", "-c", " ".join(shell)], check=True)


@asynccontextmanager
async def damage_going_on(*shell: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a damaging shell command in another process while the test (and the monitor) go on;
    waits for it on the way out (the loop keeps running meanwhile, unlike `damage`)."""
    proc = await asyncio.create_subprocess_exec("sh", "-c", " ".join(shell))
    try:
        yield proc
    finally:
        if proc.returncode is None:
            await asyncio.wait_for(proc.wait(), 120)


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every non-dot file of a folder, by name."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


async def wait_event(
    bus: EventBus, predicate: Callable[[Event], bool], within: float = 60.0, after: int = 0
) -> Event:
    """The first event after `after` matching `predicate` (already buffered or future)."""
    deadline = time.monotonic() + within
    while True:
        for event in bus.since(after):
            if predicate(event):
                return event
        if time.monotonic() > deadline:
            kinds = [(e.kind, e.session, e.data.get("reason") or e.data.get("alert")) for e in bus.since(after)]
            raise AssertionError(f"no matching event within {within}s; got {kinds}")
        await asyncio.sleep(0.05)


def monitor_settings(auth_root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_root": auth_root,
        "monitor_scan_interval": 2.0,
        "monitor_confirm_delay": 0.2,
        "snapshot_min_interval": 0.5,
        "alert_window": 600.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningWatcher:
    settings: Settings
    bus: EventBus
    snapshots: Snapshots
    watcher: AuthWatcher


@asynccontextmanager
async def running_watcher(
    auth_root: Path, sessions: SessionControl | None = None, **overrides: Any
) -> AsyncIterator[RunningWatcher]:
    settings = monitor_settings(auth_root, **overrides)
    bus = EventBus()
    snapshots = Snapshots(auth_root)
    watcher = AuthWatcher(settings, bus, snapshots, sessions=sessions)
    task = asyncio.create_task(watcher.run())
    try:
        yield RunningWatcher(settings, bus, snapshots, watcher)
    finally:
        watcher.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class LegacyTenant:
    """A live legacy Node process (real Baileys useMultiFileAuthState) writing its own folder."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.ready = ready

    @classmethod
    async def start(cls, folder: Path) -> LegacyTenant:
        proc = await asyncio.create_subprocess_exec(
            node(), str(LEGACY_TENANT), "serve", str(folder),
            cwd=PROJECT_ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        tenant = cls(proc, {})
        tenant.ready = await tenant._answer()
        return tenant

    async def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line, "the legacy tenant exited"
        answer: dict[str, Any] = json.loads(line)
        assert answer.get("ok"), answer
        return answer

    async def cmd(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._answer()

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.cmd("exit")
                await asyncio.wait_for(self.proc.wait(), 30)
            except (AssertionError, TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()
