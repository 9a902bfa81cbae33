"""`sandbox_mode`: the life of one sandbox run, wrapped around the service (bridge.app.serve).

Order: check and mark the sandbox roots, start the simulator, create the simulated contacts,
point the settings at the simulator (`wa_url`, `wa_trust_root`), label the process; after the
service stopped (sessions first), stop the echo contact and the simulator, unlabel. A production
run only gets `production_guard`: it refuses a root a sandbox made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import Gauge

from bridge.config import Settings
from bridge.events import EventBus, mark_sandbox
from bridge.sandbox.echo import EchoContact
from bridge.sandbox.phone import VirtualPhone
from bridge.sandbox.roots import mark_roots, refuse_sandbox_roots, sandbox_roots
from bridge.sandbox.simulator import SimulatorAddress, SimulatorChild
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SANDBOX_INFO = Gauge("bridge_sandbox", "1 while this bridge runs in sandbox mode (bundled simulator, no WhatsApp)")
SANDBOX_INFO.set(0)


@dataclass(frozen=True)
class SimulatedContact:
    phone: str
    name: str


ECHO = SimulatedContact("15550001000", "Echo")
CONTACTS = (ECHO, SimulatedContact("15550002000", "Alice"), SimulatedContact("15550003000", "Bob"))
"""The simulated users every sandbox has; Echo answers every message (bridge.sandbox.echo)."""


@dataclass
class SandboxRun:
    """What a running sandbox offers the service: its settings, the simulator, the virtual phone."""

    settings: Settings
    address: SimulatorAddress
    phone: VirtualPhone
    contacts: tuple[SimulatedContact, ...] = CONTACTS
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _bus: EventBus | None = None

    def attach(self, bus: EventBus) -> None:
        """Start the echo contact and report a simulator death on `bus` from now on."""
        self._bus = bus
        echo = EchoContact(self.phone, ECHO.phone)
        self._tasks.append(asyncio.create_task(echo.run(), name="sandbox-echo"))

    def simulator_exited(self, code: int | None) -> None:
        if self._bus is not None:
            self._bus.alert(None, "sandbox_simulator_exited", "critical",
                            f"the sandbox simulator exited (code {code}); restart the bridge to get a new one "
                            "(its accounts were in memory: link the sessions again)")

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.phone.close()


def production_guard(settings: Settings) -> None:
    """Refuse to run a production bridge on a sandbox's auth root (`SandboxRefused`)."""
    if not settings.sandbox:
        refuse_sandbox_roots(settings)


@contextlib.asynccontextmanager
async def sandbox_mode(settings: Settings) -> AsyncIterator[SandboxRun | None]:
    """Yield None for a production run; else start the sandbox and yield it (stopped on exit).

    Raises `SandboxRefused` (a ConfigError: exit 2) before anything starts when the roots would
    mix sandbox and production data, ConfigError when Node or the simulator cannot start.
    """
    if not settings.sandbox:
        yield None
        return
    sandboxed = sandbox_roots(settings)
    await asyncio.to_thread(mark_roots, sandboxed)
    run: SandboxRun | None = None
    child = SimulatorChild(sandboxed, lambda code: run.simulator_exited(code) if run is not None else None)
    address = await child.start()
    phone = VirtualPhone(address.control_url)
    try:
        for contact in CONTACTS:
            await phone.ensure_contact(contact.phone, contact.name)
        sandboxed = sandboxed.model_copy(update={"wa_url": address.ws_url, "wa_trust_root": address.root_pub})
        run = SandboxRun(sandboxed, address, phone)
        mark_sandbox(True)
        SANDBOX_INFO.set(1)
        log.warning("SANDBOX MODE: sessions talk to the bundled simulator only (auth root %s); nothing here "
                    "reaches WhatsApp", sandboxed.auth_root)
        yield run
    finally:
        if run is not None:
            await run.close()
        else:
            await phone.close()
        await child.stop()
        mark_sandbox(False)
        SANDBOX_INFO.set(0)
