"""The service: Settings -> EventBus -> Snapshots -> SessionManager -> monitor -> HTTP API.

`serve` runs until SIGTERM/SIGINT (or the `stop` event), then shuts down in the order that loses
nothing: /readyz turns 503 and the listener closes (no new requests), open SSE streams end,
in-flight requests finish, the monitor stops, and finally every session stops cleanly (creds are
flushed through the store and each Node child exits) before `serve` returns.

One auth root, one bridge: `serve` holds the root lock (`RootLock`, `.bridge/locks/bridge.lock`)
for its whole life. A second bridge on the same root raises `RootLockedError` before it listens
(the CLI prints one line and exits 3), so two bridges never overwrite each other's registry or
repair the same folders.

A storage fault at start (the auth root read-only, permission denied, full, failing) does not stop
the service: the API comes up, one critical `storage_fault` alert says what broke and how to fix
it, /healthz and /readyz show the fault, the sessions that should run stay stopped with the fault
as their reason, and the monitor waits. The root is probed with the one backoff policy; once it
takes a durable write again the bridge takes the lock (if it could not before), reads its registry,
starts the monitor and the sessions, and turns ready.

Cluster mode (`BRIDGE_CLUSTER_DSN`, docs/cluster.md): the same service, composed with a
`ClusterNode` (bridge/cluster/service.py). The registry and auth state live in PostgreSQL, the
coordinator (not `start_all`) decides which tenants this node runs, the API forwards requests for
other nodes' tenants, and SIGTERM hands every tenant over before the sessions stop. The file
monitor does not run: the auth bytes are not in the local folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import signal
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bridge.api import state
from bridge.api.app import create_app, open_event_log
from bridge.config import Settings
from bridge.delivery import Backoff
from bridge.errors import ConfigError, StoreError
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.sandbox import SandboxRun, production_guard, sandbox_mode
from bridge.sessions.manager import SessionManager
from bridge.sessions.session import STORAGE_INCIDENT
from bridge.sessions.storage_probe import probe_write
from bridge.store import durable, group_commit, inline
from bridge.store.lock import RootLock, RootLockedError
from bridge.store.snapshots import Snapshots

if TYPE_CHECKING:
    from bridge.cluster.service import ClusterNode

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


def claim_root(settings: Settings, lock: RootLock) -> StoreError | None:
    """Make the auth root this bridge's: create it, take the root lock, prove it takes a durable
    write. Returns the storage fault that prevents it (None: all done); raises `RootLockedError`
    when another bridge holds the root, and any other `StoreError` that is not a storage fault."""
    try:
        durable.make_dirs(settings.auth_root)
        if not lock.held:
            lock.acquire()
        probe_write(settings.bridge_dir)
    except RootLockedError:
        raise
    except StoreError as exc:
        if durable.is_storage_fault(exc):
            return exc
        raise
    return None


async def _wait_for_storage(
    settings: Settings, lock: RootLock, manager: SessionManager, fault: StoreError, stop: asyncio.Event
) -> bool:
    """Report the start-up storage fault once, keep the wanted sessions stopped, and probe until
    the root works (True) or the bridge is asked to stop (False)."""
    message = (
        f"the bridge cannot use its auth root {settings.auth_root}: {fault} The API is up, sessions stay "
        "stopped, and the bridge starts them by itself once the root takes writes again."
    )
    manager.fault = fault
    manager.desk.join(STORAGE_INCIDENT, None, "storage_fault", message, code=fault.code)
    log.critical("%s", message)
    await manager.defer_all(fault)
    backoff = Backoff(settings.reconnect_initial, settings.reconnect_max)
    attempt = 0
    current: StoreError | None = fault
    while current is not None:
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff.delay(attempt))
        if stop.is_set():
            return False
        current = await asyncio.to_thread(claim_root, settings, lock)
        if current is None:
            try:
                await manager.recover()
            except StoreError as exc:
                if not durable.is_storage_fault(exc):
                    raise
                current = exc
        if current is not None:
            manager.fault = current
            log.info("auth root still refuses writes (%s); next probe with backoff", current.code)
    manager.fault = None
    manager.desk.leave(STORAGE_INCIDENT, None)
    log.warning("the auth root %s takes writes again; starting the sessions", settings.auth_root)
    return True


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


OPEN_FILES_WANTED = 65536
"""Soft open-files limit the service asks for when the hard limit allows no more (unlimited)."""


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit, as Node does for itself, and
    return it. Every running session holds three descriptors (its lock, its journal's lock and
    segment) and every runtime three pipes: 1000 tenants need about 3,200, above the soft limit of
    1024 that systemd and most shells give, which would fail sessions with EMFILE from ~300 on."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d (%s); each session needs 3", soft,
                        target, exc)
            return soft
        return target
    return soft


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the bridge until `stop` is set or SIGTERM/SIGINT arrives; returns after a clean shutdown."""
    check_bind(settings)
    raise_open_files_limit()
    production_guard(settings)
    group_commit.configure(syncfs=settings.journal_syncfs)
    inline.configure(enabled=settings.inline_commits)
    if stop is None:
        stop = asyncio.Event()
        _install_signal_handlers(stop)
    async with sandbox_mode(settings) as sandbox:  # sandbox mode: its own roots, beside the simulator
        if sandbox is not None:
            settings = sandbox.settings
        root_lock = RootLock(settings.bridge_dir)
        fault = await asyncio.to_thread(claim_root, settings, root_lock)  # RootLockedError: refuse to start
        try:
            await _serve(settings, stop, root_lock, fault, sandbox)
        finally:
            root_lock.release()


async def _serve(
    settings: Settings, stop: asyncio.Event, root_lock: RootLock, fault: StoreError | None, sandbox: SandboxRun | None
) -> None:
    bus = EventBus(settings.events_buffer)
    event_log = open_event_log(settings, bus)
    await event_log.open()  # before anything publishes; closed after the sessions' last events
    snapshots = Snapshots(settings.auth_root)
    cluster = await _open_cluster(settings, bus)
    try:
        await _serve_with(settings, stop, root_lock, fault, sandbox, bus, event_log, snapshots, cluster)
    finally:
        if cluster is not None:
            await cluster.close()


async def _open_cluster(settings: Settings, bus: EventBus) -> ClusterNode | None:
    if not settings.cluster_dsn:
        return None
    from bridge.cluster.service import open_cluster_node

    return await open_cluster_node(settings, bus)


async def _serve_with(
    settings: Settings, stop: asyncio.Event, root_lock: RootLock, fault: StoreError | None, sandbox: SandboxRun | None,
    bus: EventBus, event_log: EventLog, snapshots: Snapshots, cluster: ClusterNode | None,
) -> None:
    sessions_snapshots = cluster.session_snapshots() if cluster is not None else snapshots
    manager = SessionManager(settings, bus, sessions_snapshots, **(cluster.manager_options() if cluster else {}))
    if cluster is not None:
        cluster.coordinator.attach(manager)
    if sandbox is not None:
        sandbox.attach(bus)
    app = create_app(settings, manager, bus, sessions_snapshots, ready=False, event_log=event_log, sandbox=sandbox,
                     forward=cluster.forward_middleware() if cluster is not None else None)
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
        if fault is not None and not await _wait_for_storage(settings, root_lock, manager, fault, stop):
            log.info("shutting down before the auth root recovered")
            return
        starting: asyncio.Future[Any]
        if cluster is None:
            monitor = _start_monitor(settings, bus, snapshots, manager)
            starting = asyncio.ensure_future(manager.start_all())
        else:
            log.info("cluster mode: the file monitor is off (auth state lives in the cluster database)")
            starting = asyncio.ensure_future(cluster.coordinator.start())
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
        log.info("API closed")
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        if cluster is not None:
            await cluster.coordinator.handover()
        await manager.shutdown()
        await event_log.close()
        log.info("shutdown complete")
