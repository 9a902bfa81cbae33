"""`run_monitor`: the whole safe monitor as one coroutine (alerts, auth watcher, session watch,
scheduled snapshots), used inside `python -m bridge` by bridge/app.py and by the standalone
`python -m bridge monitor --root <auth-root>` beside a legacy Node setup.

It runs until cancelled. Cancelling it delivers queued alerts for a few seconds, then stops.
Nothing in here can delete or rewrite an auth file; see watcher.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from bridge.config import Settings
from bridge.events import EventBus
from bridge.monitor.alerts import Alerter, AlertSink
from bridge.monitor.health import SessionWatch
from bridge.monitor.watcher import AuthWatcher, SessionControl
from bridge.sessions.incident_desk import IncidentDesk
from bridge.store.snapshots import Snapshots

log = logging.getLogger("bridge.monitor")


async def _scheduled_snapshots(watcher: AuthWatcher, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            taken = await watcher.snapshot_all("scheduled")
            log.info("scheduled snapshots: %d folders", len(taken))
        except Exception:
            log.exception("scheduled snapshots failed; retrying at the next interval")


async def run_monitor(
    settings: Settings,
    bus: EventBus,
    snapshots: Snapshots,
    sessions: SessionControl | None = None,
    *,
    manager: SessionControl | None = None,
    sinks: Sequence[AlertSink] | None = None,
    watcher: AuthWatcher | None = None,
) -> None:
    """Run every monitor task until cancelled.

    `sessions` (or `manager`, the name bridge/app.py passes) is the SessionManager: with it a
    damaged folder under a running session is restored between a stop and a start; without it
    (standalone beside a legacy process) folders are restored in place while the legacy process
    keeps running. `sinks` defaults to the log plus Telegram when configured.
    """
    control = sessions if sessions is not None else manager
    alerter = Alerter.from_settings(settings, sinks)
    alerter.start()
    desk = getattr(control, "desk", None)  # the SessionManager's IncidentDesk, shared with its sessions
    watcher = watcher or AuthWatcher(
        settings, bus, snapshots, sessions=control, desk=desk if isinstance(desk, IncidentDesk) else None
    )
    health = SessionWatch(settings, bus, snapshots)
    tasks = [
        asyncio.create_task(alerter.consume(bus, after=bus.last_seq), name="monitor-alerts"),
        asyncio.create_task(watcher.run(), name="monitor-auth"),
        asyncio.create_task(health.run(), name="monitor-health"),
        asyncio.create_task(_scheduled_snapshots(watcher, settings.snapshot_interval), name="monitor-schedule"),
    ]
    log.info(
        "monitor running over %s (%s); alerts to %s",
        settings.auth_root,
        "with the session manager" if control is not None else "standalone, read-only beside another writer",
        ", ".join(s.name for s in alerter.sinks),
    )
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        for _ in range(3):  # let the alert consumer take the last alerts off the bus
            await asyncio.sleep(0)
        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]
        await alerter.aclose(drain_timeout=5.0)
