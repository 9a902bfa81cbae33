"""`create_app`: the aiohttp application of the bridge (routes, middlewares, lifecycle hooks).

It only wires things together: each route area lives in its own module with its own
`RouteTableDef`. The caller (bridge.app) owns the manager's lifecycle. The event log is the
caller's too when it passes one (so it closes after the sessions stopped and their last events
are written); otherwise the app opens one under the state folder and closes it on cleanup. The
app owns the webhook dispatcher and the open SSE streams, and ends both on shutdown.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.api import (
    events,
    group_routes,
    health,
    media_routes,
    message_routes,
    metrics,
    openapi,
    qr,
    sandbox_routes,
    sessions,
    snapshots,
    state,
    static_files,
)
from bridge.api import webhooks as webhook_routes
from bridge.api.auth import make_auth_middleware
from bridge.api.errors import error_middleware, quiet_malformed_requests
from bridge.config import Settings
from bridge.eventlog.location import event_log_path, webhooks_path
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.sandbox import SandboxRun
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from bridge.webhooks.config import WebhookConfigs
from bridge.webhooks.dispatcher import WebhookDispatcher

ROUTE_TABLES = (
    health.routes,
    metrics.routes,
    openapi.routes,
    sessions.routes,
    qr.routes,
    message_routes.routes,
    media_routes.routes,
    group_routes.routes,
    events.routes,
    snapshots.routes,
    webhook_routes.routes,
    static_files.routes,
)
OWNS_LOG: web.AppKey[bool] = web.AppKey("owns_event_log", bool)


def create_app(
    settings: Settings,
    manager: SessionManager,
    bus: EventBus,
    snapshots: Snapshots,
    *,
    ready: bool = True,
    event_log: EventLog | None = None,
    sandbox: SandboxRun | None = None,
    forward: Middleware | None = None,
) -> web.Application:
    """Build the application. `ready=False` lets the service flip /readyz itself after start_all.

    Pass an opened `event_log` to keep its life cycle; without one the app opens its own. A
    `sandbox` run adds the virtual-phone routes (bridge.api.sandbox_routes); production has none.
    `forward` (cluster mode, bridge/cluster/forward.py) runs after the key check and inside the
    error middleware: requests for tenants of other nodes go there.
    """
    quiet_malformed_requests()
    middlewares: list[Middleware] = [
        make_auth_middleware(settings.api_keys, metrics_public=settings.metrics_public), error_middleware]
    if forward is not None:
        middlewares.append(forward)
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    log = event_log if event_log is not None else open_event_log(settings, bus)
    app[state.SETTINGS] = settings
    app[state.BUS] = bus
    app[state.EVENT_LOG] = log
    app[OWNS_LOG] = event_log is None
    app[state.MANAGER] = manager
    app[state.SNAPSHOTS] = snapshots
    app[state.READY] = asyncio.Event()
    if ready:
        app[state.READY].set()
    app[state.STREAMS] = set()
    legacy = settings.bridge_dir / "webhooks.json"
    app[state.WEBHOOKS] = WebhookDispatcher(settings, log, WebhookConfigs(webhooks_path(settings), legacy))
    if sandbox is not None:
        sandbox_routes.install(app, sandbox)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    app.on_startup.append(_start)
    app.on_shutdown.append(_begin_shutdown)
    app.on_cleanup.append(_stop)
    return app


def open_event_log(settings: Settings, bus: EventBus) -> EventLog:
    """The event log of these settings (not opened yet: `await log.open()`)."""
    return EventLog(event_log_path(settings), bus, memory_max=settings.event_memory_max,
                    retention_age=settings.event_retention_days * 86400.0,
                    retention_count=settings.event_retention_count)


async def _start(app: web.Application) -> None:
    if app[OWNS_LOG]:
        await app[state.EVENT_LOG].open()
    await app[state.WEBHOOKS].start()


async def _begin_shutdown(app: web.Application) -> None:
    app[state.READY].clear()
    await events.close_streams(app)


async def _stop(app: web.Application) -> None:
    await app[state.WEBHOOKS].stop()
    if app[OWNS_LOG]:
        await app[state.EVENT_LOG].close()
