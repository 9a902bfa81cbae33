"""Starting many sessions at once without a stampede: bounded concurrency and a jittered ramp.

After a reboot with a thousand linked tenants, starting them all at the same moment would open a
thousand WebSockets to WhatsApp in the same second (a pattern a server may read as abuse) and load
this box with as many Noise handshakes and creds reads. So the first `concurrency` sessions start
at once; every later one waits a random moment within `ramp` seconds, and at most `concurrency`
are between `Start` and a settled state (`state.SETTLED`: qr, pairing, open, reconnecting, or an
end) at any time. A session that does not settle within `settle_timeout` frees its slot anyway:
it keeps trying on its own, the ramp only paces the beginnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Protocol

from bridge.sessions import state as st


class Startable(Protocol):
    """What the ramp needs of a session (`Session` has it)."""

    async def dispatch(self, event: st.SessionEvent) -> st.Transition: ...

    async def wait_for(self, states: set[st.SessionState], timeout: float) -> st.SessionState: ...  # noqa: ASYNC109


class StartRamp:
    """Starts a batch of sessions under the limits in the module docstring."""

    def __init__(self, concurrency: int, ramp: float, settle_timeout: float) -> None:
        self.concurrency = max(1, concurrency)
        self.ramp = max(0.0, ramp)
        self.settle_timeout = settle_timeout

    async def start(self, sessions: Sequence[Startable]) -> None:
        """Start every session under the limits; returns when every one was started and settled
        (or timed out settling)."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int, session: Startable) -> None:
            if index >= self.concurrency and self.ramp > 0:
                await asyncio.sleep(random.uniform(0.0, self.ramp))
            async with slots:
                await session.dispatch(st.Start())
                with contextlib.suppress(TimeoutError):
                    await session.wait_for(set(st.SETTLED), self.settle_timeout)

        await asyncio.gather(*(one(i, s) for i, s in enumerate(sessions)))
