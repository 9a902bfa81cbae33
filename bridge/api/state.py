"""Typed keys for what the aiohttp application holds (aiohttp's `AppKey`, no string lookups).

Route modules read the manager, bus, event log, webhooks, snapshots and settings through these
keys; `create_app` is the only place that sets them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bridge.config import Settings
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from bridge.webhooks.dispatcher import WebhookDispatcher

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
BUS: web.AppKey[EventBus] = web.AppKey("bus", EventBus)
EVENT_LOG: web.AppKey[EventLog] = web.AppKey("event_log", EventLog)
MANAGER: web.AppKey[SessionManager] = web.AppKey("manager", SessionManager)
SNAPSHOTS: web.AppKey[Snapshots] = web.AppKey("snapshots", Snapshots)
WEBHOOKS: web.AppKey[WebhookDispatcher] = web.AppKey("webhooks", WebhookDispatcher)
READY: web.AppKey[asyncio.Event] = web.AppKey("ready", asyncio.Event)
# Queues of open SSE streams; shutdown puts None in each so streams end instead of hanging.
STREAMS: web.AppKey[set[asyncio.Queue[Any]]] = web.AppKey("streams")
