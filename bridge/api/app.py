"""`create_app`: the aiohttp application of the bridge (routes, middlewares, lifecycle hooks).

It only wires things together: each route area lives in its own module with its own
`RouteTableDef`. The caller (bridge.app) owns the manager's lifecycle; the app owns the webhook
dispatcher and the open SSE streams, and ends both on shutdown.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bridge.api import events, health, messages, metrics, openapi, qr, sessions, snapshots, state, static_files
from bridge.api import webhooks as webhook_routes
from bridge.api.auth import make_auth_middleware
from bridge.api.errors import error_middleware
from bridge.api.webhooks import WebhookDispatcher
from bridge.config import Settings
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots

ROUTE_TABLES = (
    health.routes,
    metrics.routes,
    openapi.routes,
    sessions.routes,
    qr.routes,
    messages.routes,
    events.routes,
    snapshots.routes,
    webhook_routes.routes,
    static_files.routes,
)


def create_app(
    settings: Settings, manager: SessionManager, bus: EventBus, snapshots: Snapshots, *, ready: bool = True
) -> web.Application:
    """Build the application. `ready=False` lets the service flip /readyz itself after start_all."""
    app = web.Application(
        middlewares=[make_auth_middleware(settings.api_keys, metrics_public=settings.metrics_public), error_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[state.SETTINGS] = settings
    app[state.BUS] = bus
    app[state.MANAGER] = manager
    app[state.SNAPSHOTS] = snapshots
    app[state.READY] = asyncio.Event()
    if ready:
        app[state.READY].set()
    app[state.STREAMS] = set()
    app[state.WEBHOOKS] = WebhookDispatcher(settings, bus)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    app.on_startup.append(_start_webhooks)
    app.on_shutdown.append(_begin_shutdown)
    app.on_cleanup.append(_stop_webhooks)
    return app


async def _start_webhooks(app: web.Application) -> None:
    await app[state.WEBHOOKS].start()


async def _begin_shutdown(app: web.Application) -> None:
    app[state.READY].clear()
    await events.close_streams(app)


async def _stop_webhooks(app: web.Application) -> None:
    await app[state.WEBHOOKS].stop()
