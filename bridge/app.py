"""The service: Settings -> EventBus -> Snapshots -> SessionManager -> monitor -> HTTP API.

`serve` runs until SIGTERM/SIGINT (or the `stop` event), then shuts down in the order that loses
nothing: /readyz turns 503 and the listener closes (no new requests), open SSE streams end,
in-flight requests finish, the monitor stops, and finally every session stops cleanly (creds are
flushed through the store and each Node child exits) before `serve` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Awaitable

from aiohttp import web

from bridge.api import state
from bridge.api.app import create_app, open_event_log
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots

log = logging.getLogger(__name__)

def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to expose an API without keys to the network (it can read QR codes and send messages)."""
    if not settings.api_keys and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host}:{settings.port} without an API key: set BRIDGE_API_KEYS "
            "(comma-separated) or bind to 127.0.0.1"
        )


def _start_monitor(
    settings: Settings, bus: EventBus, snapshots: Snapshots, manager: SessionManager
) -> asyncio.Task[None] | None:
    if not settings.monitor_enabled:
        log.info("monitor disabled (BRIDGE_MONITOR_ENABLED=false)")
        return None
    from bridge.monitor.runner import run_monitor

    return asyncio.create_task(_guard(run_monitor(settings, bus, snapshots, manager=manager)), name="monitor")


async def _guard(work: Awaitable[None]) -> None:
    """A monitor crash is logged, never fatal: the sessions must keep running."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the monitor stopped with an error; sessions keep running without it")


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the bridge until `stop` is set or SIGTERM/SIGINT arrives; returns after a clean shutdown."""
    check_bind(settings)
    if stop is None:
        stop = asyncio.Event()
        _install_signal_handlers(stop)
    settings.auth_root.mkdir(parents=True, exist_ok=True)
    bus = EventBus(settings.events_buffer)
    event_log = open_event_log(settings, bus)
    await event_log.open()  # before anything publishes; closed after the sessions' last events
    snapshots = Snapshots(settings.auth_root)
    manager = SessionManager(settings, bus, snapshots)
    app = create_app(settings, manager, bus, snapshots, ready=False, event_log=event_log)
    runner = web.AppRunner(app, shutdown_timeout=settings.shutdown_timeout, access_log=None)
    await runner.setup()
    monitor: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
                "pick another BRIDGE_PORT (or --port), or stop what is using it"
            ) from exc
        log.info("baileys-bridge listening on http://%s:%d (auth root %s)", settings.host, settings.port,
                 settings.auth_root)
        if not settings.api_keys:
            log.warning("no BRIDGE_API_KEYS configured: the API is open to anyone on this machine")
        monitor = _start_monitor(settings, bus, snapshots, manager)
        starting = asyncio.ensure_future(manager.start_all())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            app[state.READY].set()
            log.info("sessions started; ready")
            await stopping
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        log.info("shutting down: closing the API, then stopping sessions")
    finally:
        app[state.READY].clear()
        await runner.cleanup()
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        await manager.shutdown()
        await event_log.close()
        log.info("shutdown complete")
