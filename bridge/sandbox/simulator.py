"""The bundled simulator as a supervised child of the bridge.

Why no orphan can survive: the child leads its own process group, reads its stdin and exits when
it closes, so even a SIGKILLed bridge takes it down (the kernel closes the pipe); a clean stop
closes stdin, waits, then SIGTERMs and SIGKILLs the group like the Node runtimes
(`BRIDGE_TERM_GRACE`). Why no restart: the simulator keeps its accounts and linked devices in
memory, so a new one would not know any session; an unexpected exit is reported (critical
`sandbox_simulator_exited` alert) and sessions reconnect in vain until the bridge is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

import msgspec

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.sandbox.location import SIMULATOR_MAIN
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 60.0
STDERR_LINE_MAX = 4096


class SimulatorAddress(msgspec.Struct, frozen=True):
    """The simulator's address line: where Baileys connects, where the control API listens, and
    the root key Baileys must trust instead of WhatsApp's."""

    ws_url: str
    control_url: str
    root_pub: str


class SimulatorChild:
    """One simulator process: `start()` returns its address, `stop()` reaps it."""

    def __init__(self, settings: Settings, on_exit: Callable[[int | None], None]) -> None:
        self.settings = settings
        self._on_exit = on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> SimulatorAddress:
        if not SIMULATOR_MAIN.is_file():
            raise ConfigError(f"the bundled simulator is missing ({SIMULATOR_MAIN}); reinstall baileys-bridge")
        env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
        try:
            proc = await asyncio.create_subprocess_exec(
                self.settings.node, str(SIMULATOR_MAIN), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
                env=env, cwd=str(SIMULATOR_MAIN.parent),
            )
        except OSError as exc:
            raise ConfigError(f"cannot start the sandbox simulator with {self.settings.node!r}: {exc}; "
                              "install Node >= 20 or set BRIDGE_NODE") from exc
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        self._tasks.append(asyncio.create_task(self._pump_stderr(proc.stderr), name="sandbox-simulator-stderr"))
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT)
            address = msgspec.json.decode(line, type=SimulatorAddress)
        except (TimeoutError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self.stop()
            raise ConfigError(f"the sandbox simulator did not start ({exc or 'no address line'}); "
                              "see the `bridge.sandbox.simulator` log lines above") from exc
        self._tasks.append(asyncio.create_task(self._watch(proc), name="sandbox-simulator-watch"))
        log.info("sandbox simulator pid %d: ws %s, control %s", proc.pid, address.ws_url, address.control_url)
        return address

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not self._stopping:
            log.critical("the sandbox simulator exited unexpectedly (code %s); restart the bridge", code)
            self._on_exit(code)

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            log.debug("simulator: %s", line[:STDERR_LINE_MAX].decode(errors="replace").rstrip())

    async def stop(self) -> None:
        """Close stdin (the simulator's own stop), then SIGTERM and SIGKILL the group if it lingers."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    await asyncio.wait_for(proc.wait(), self.settings.term_grace)
                    break
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
            await proc.wait()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
