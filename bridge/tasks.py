"""Stopping background tasks: one way, so no caller swallows its own cancellation.

Stopping a task is "cancel, then wait until it has finished its `finally` blocks". Written out
by hand (`task.cancel(); with suppress(CancelledError): await task`) the suppress also swallows a
cancellation aimed at the *caller* while it waits, and the caller carries on as if nothing had
happened. `asyncio.gather(..., return_exceptions=True)` collects the tasks' own CancelledErrors
as results but still lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel every task (None entries are skipped) and wait until all of them have finished.

    Exceptions the tasks end with are dropped: their owners log what matters before ending.
    """
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
