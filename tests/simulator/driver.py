"""Runs the acceptance driver (plain Baileys + useMultiFileAuthState, acceptance/client.mjs) as a
real Node process and exposes its JSON-line events to tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.simulator.client import ACCEPTANCE_CLIENT, REPO_ROOT, SimulatorClient, node_binary

Event = dict[str, Any]


class BaileysDriver:
    """One Baileys socket (reconnecting only on 515) with its auth folder on disk."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Event], bool], within: float = 90.0, *, after: int = 0) -> Event:
        """First event (index >= after) matching predicate; TimeoutError names what was seen."""
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    while True:
                        for event in self.events[after:]:
                            if predicate(event):
                                return event
                        if self._reader.done():
                            raise AssertionError(f"driver exited; events: {self.events[-15:]}")
                        await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no matching driver event within {within}s; last events: {self.events[-15:]}") from None

    async def command(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.command("quit")
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def baileys(
    sim: SimulatorClient, auth_dir: Path, *, pin_root: bool = True, opts: dict[str, Any] | None = None
) -> AsyncIterator[BaileysDriver]:
    """Start acceptance/client.mjs against `sim` with its auth folder at `auth_dir`."""
    env = {**os.environ, "SIM_CLIENT_OPTS": json.dumps(opts or {})}
    proc = await asyncio.create_subprocess_exec(
        node_binary(),
        str(ACCEPTANCE_CLIENT),
        sim.ws_url,
        sim.root_pub if pin_root else "-",
        str(auth_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )
    driver = BaileysDriver(proc)
    try:
        yield driver
    finally:
        await driver.stop()


async def pair_by_qr(sim: SimulatorClient, driver: BaileysDriver, phone: str) -> Event:
    """Scan the first QR the driver shows with `phone`; return the `open` event."""
    qr = await driver.wait_for(lambda e: bool(e.get("qr")))
    await sim.scan(str(qr["qr"]), phone)
    return await driver.wait_for(lambda e: e.get("connection") == "open")


REPLY_EVENT = {"send": "sent", "pair_code": "pairing_code"}


async def run(driver: BaileysDriver, cmd: str, *, within: float = 60.0, **args: Any) -> Event:
    """Send a driver command and return its answer event; a failed command raises with its error."""
    mark = len(driver.events)
    await driver.command(cmd, **args)
    name = REPLY_EVENT.get(cmd, cmd)
    event = await driver.wait_for(
        lambda e: e.get("ev") == name or (e.get("ev") == "error" and e.get("cmd") == cmd), within, after=mark
    )
    if event["ev"] == "error":
        raise AssertionError(f"driver command {cmd} failed: {event}")
    return event


async def received(driver: BaileysDriver, message_id: str, within: float = 60.0) -> Event:
    """The `message` event (messages.upsert) of `message_id`."""
    return await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == message_id, within)


async def failure(driver: BaileysDriver, cmd: str, *, within: float = 60.0, **args: Any) -> Event:
    """Send a driver command that must fail; return its error event (AssertionError if it succeeds)."""
    mark = len(driver.events)
    await driver.command(cmd, **args)
    name = REPLY_EVENT.get(cmd, cmd)
    event = await driver.wait_for(
        lambda e: e.get("ev") == name or (e.get("ev") == "error" and e.get("cmd") == cmd), within, after=mark
    )
    if event["ev"] != "error":
        raise AssertionError(f"driver command {cmd} was expected to fail: {event}")
    return event
