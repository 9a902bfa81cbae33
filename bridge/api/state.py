"""Typed keys for what the aiohttp application holds (aiohttp's `AppKey`, no string lookups).

Route modules read the manager, bus, snapshots and settings through these keys; `create_app` is
the only place that sets them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bridge.config import Settings
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots

if TYPE_CHECKING:
    from bridge.api.webhooks import WebhookDispatcher

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
BUS: web.AppKey[EventBus] = web.AppKey("bus", EventBus)
MANAGER: web.AppKey[SessionManager] = web.AppKey("manager", SessionManager)
SNAPSHOTS: web.AppKey[Snapshots] = web.AppKey("snapshots", Snapshots)
WEBHOOKS: web.AppKey[WebhookDispatcher] = web.AppKey("webhooks")
READY: web.AppKey[asyncio.Event] = web.AppKey("ready", asyncio.Event)
# Queues of open SSE streams; shutdown puts None in each so streams end instead of hanging.
STREAMS: web.AppKey[set[asyncio.Queue[Any]]] = web.AppKey("streams")
