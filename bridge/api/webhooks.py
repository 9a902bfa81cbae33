"""Optional per-session webhooks: each event of the session is POSTed to a tenant's URL.

Delivery never blocks a session: the dispatcher is just another bus subscriber, each session has
its own bounded queue and worker (a slow or dead endpoint delays only its own deliveries, and
when its queue is full the oldest pending event is dropped and counted). Each attempt carries
`X-Bridge-Signature: sha256=<hex HMAC-SHA256 of the body with the session's secret>`, the event
kind and the delivery id (the event seq, stable across retries so receivers can deduplicate).
A non-2xx answer or a network error is retried with exponential backoff up to
`webhook_max_attempts`.

Configs live in `AUTH_ROOT/.bridge/webhooks.json` (mode 0600: it holds the secrets), written
atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from pathlib import Path

import aiohttp
from aiohttp import web

from bridge.api import state
from bridge.api.models import WebhookConfig, WebhookView
from bridge.api.routing import RequestError, json_response, operation, read_body
from bridge.config import Settings
from bridge.events import Event, EventBus
from bridge.metrics import WEBHOOK_DELIVERIES
from bridge.store.durable import atomic_write

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SIGNATURE_HEADER = "X-Bridge-Signature"
QUEUE_SIZE = 1000
BACKOFF_CAP = 60.0


def sign(secret: str, body: bytes) -> str:
    """The value of X-Bridge-Signature for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(event: Event) -> bytes:
    return json.dumps(
        {"seq": event.seq, "ts": event.ts, "session": event.session, "kind": event.kind, "data": event.data},
        separators=(",", ":"),
        default=str,
    ).encode()


def _write_private(path: Path, data: bytes) -> None:
    """Atomic, durable, owner-only write: the store's own primitive (webhook secrets live here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


class WebhookDispatcher:
    """Holds the webhook configs and delivers events to them in the background."""

    def __init__(self, settings: Settings, bus: EventBus) -> None:
        self._settings = settings
        self._bus = bus
        self._path = settings.bridge_dir / "webhooks.json"
        self._configs: dict[str, WebhookConfig] = {}
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None

    def _load(self) -> None:
        if not self._path.exists():
            return
        raw = json.loads(self._path.read_text())
        self._configs = {sid: WebhookConfig.model_validate(cfg) for sid, cfg in raw.items()}

    async def _save(self) -> None:
        data = json.dumps({sid: cfg.model_dump() for sid, cfg in self._configs.items()}, indent=2).encode()
        await asyncio.to_thread(_write_private, self._path, data)

    async def start(self) -> None:
        """Load configs and start following the bus (call once, inside the running loop)."""
        await asyncio.to_thread(self._load)
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout))
        self._reader = asyncio.create_task(self._follow(), name="webhooks-follow")

    async def stop(self) -> None:
        """Stop following and drop pending deliveries (they are events, not state; nothing is lost on disk)."""
        tasks = [t for t in (self._reader, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        if self._client is not None:
            await self._client.close()

    def get(self, session_id: str) -> WebhookConfig | None:
        return self._configs.get(session_id)

    async def set(self, session_id: str, config: WebhookConfig) -> None:
        self._configs[session_id] = config
        await self._save()

    async def remove(self, session_id: str) -> bool:
        """Drop the session's webhook; True when there was one."""
        if self._configs.pop(session_id, None) is None:
            return False
        await self._save()
        return True

    async def _follow(self) -> None:
        async for event in self._bus.subscribe(None):
            config = self._configs.get(event.session or "")
            if config is None or (config.events and event.kind not in config.events):
                continue
            self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        sid = event.session or ""
        queue = self._queues.setdefault(sid, asyncio.Queue(QUEUE_SIZE))
        if queue.full():
            queue.get_nowait()
            WEBHOOK_DELIVERIES.labels(outcome="dropped").inc()
        queue.put_nowait(event)
        worker = self._workers.get(sid)
        if worker is None or worker.done():
            self._workers[sid] = asyncio.create_task(self._work(sid, queue), name=f"webhooks-{sid}")

    async def _work(self, sid: str, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            config = self._configs.get(sid)
            if config is not None:
                await self.deliver(config, event)

    async def deliver(self, config: WebhookConfig, event: Event) -> bool:
        """POST one event, retrying with backoff; True when the receiver answered 2xx."""
        assert self._client is not None, "start() the dispatcher first"
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(config.secret, body),
            "X-Bridge-Event": event.kind,
            "X-Bridge-Delivery": str(event.seq),
        }
        delay = self._settings.webhook_backoff_initial
        for attempt in range(1, self._settings.webhook_max_attempts + 1):
            try:
                async with self._client.post(config.url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
                        return True
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            log.warning("webhook %s for %s attempt %d failed: %s", config.url, event.session, attempt, problem)
            if attempt < self._settings.webhook_max_attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP)
        WEBHOOK_DELIVERIES.labels(outcome="gave_up").inc()
        log.error("webhook %s gave up on event %d of %s", config.url, event.seq, event.session)
        return False


PATH = "/api/v1/sessions/{id}/webhook"


@operation(routes, "PUT", PATH, summary="Set the session's webhook (url, secret, event kinds)", tag="webhooks",
           body=WebhookConfig, responses={200: WebhookView}, errors=(400, 401, 404, 413, 422))
async def put_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    request.app[state.MANAGER].get(session_id)  # unknown session: SessionNotFound, 404
    config = await read_body(request, WebhookConfig)
    await request.app[state.WEBHOOKS].set(session_id, config)
    return json_response(WebhookView(url=config.url, events=config.events))


@operation(routes, "GET", PATH, summary="The session's webhook (without its secret)", tag="webhooks",
           responses={200: WebhookView}, errors=(401, 404))
async def get_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    config = request.app[state.WEBHOOKS].get(session_id)
    if config is None:
        raise RequestError(f"session {session_id} has no webhook; PUT {PATH} sets one", code="not_found", status=404)
    return json_response(WebhookView(url=config.url, events=config.events))


@operation(routes, "DELETE", PATH, summary="Remove the session's webhook", tag="webhooks",
           responses={204: None}, errors=(401, 404))
async def delete_webhook(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    if not await request.app[state.WEBHOOKS].remove(session_id):
        raise RequestError(f"session {session_id} has no webhook", code="not_found", status=404)
    return web.Response(status=204)
