"""`WebhookDispatcher`: the service that delivers the event log's outbox rows to webhook URLs.

At least once: rows are planned in the transaction that writes their event (`route`), and a
row is marked delivered only after the receiver answered 2xx; a crash at any point leaves it
pending, and it is sent again after the restart with the same `webhook-id`. Each webhook has its
own `RetryingQueue` (bridge.delivery): at most `webhook_concurrency` requests in flight, a
session's events in order, the one backoff policy, `Retry-After` honoured, and a retry horizon
(`webhook_max_attempts`, `webhook_max_age`) after which a row joins the dead-letter list
(`deliveries(state="failed")`, `redeliver`). A receiver that is slow or down delays only its own
rows: it never blocks a session, the API, or other receivers.

Requests are bounded: `webhook_timeout` per attempt, redirects are not followed (a 3xx is a
failure: the receiver must give its final URL), and at most `RESPONSE_LIMIT` bytes of an
answer are read.

Where the rows and configs live is an `OutboxStore` and a `ConfigStore`: this node's event log
file and webhooks.json, or, when the event log is shared (cluster mode, `EventLog.shared`), the
cluster's tables, where each row is claimed by one node at a time and the configs are the same on
every node (bridge/cluster/outbox.py). The delivery rules above are the same for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Sequence

import aiohttp

from bridge.config import Settings
from bridge.delivery import Backoff, DeliveryFailed, Job, Outcome, RetryingQueue, RetryPolicy
from bridge.eventlog import outbox
from bridge.eventlog.log import EventLog, OutboxRow
from bridge.events import Event, event_json
from bridge.metrics import WEBHOOK_BACKLOG, WEBHOOK_DEAD, WEBHOOK_DELIVERIES, WEBHOOK_OLDEST_AGE
from bridge.webhooks import signing
from bridge.webhooks.config import ConfigStore, Webhook

log = logging.getLogger(__name__)
RESPONSE_LIMIT = 64 * 1024
USER_AGENT = "baileys-bridge-webhooks"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def message_id(epoch: str, seq: int) -> str:
    """The `webhook-id` of an event: stable across retries and restarts, unique per log file."""
    return f"msg_{epoch}_{seq}"


class WebhookDispatcher:
    """Owns the webhook configs and one delivery queue per webhook."""

    def __init__(self, settings: Settings, log_: EventLog, configs: ConfigStore) -> None:
        self.settings = settings
        self.log = log_
        self.configs = configs
        self.store: outbox.OutboxStore = outbox.LocalOutbox(log_)
        initial = settings.webhook_backoff_initial
        self.policy = RetryPolicy(
            Backoff(initial, max(settings.webhook_backoff_max, initial)),
            max_attempts=settings.webhook_max_attempts,
            max_age=settings.webhook_max_age,
        )
        self._queues: dict[str, RetryingQueue[Event | None]] = {}
        self._backlogs: dict[str, outbox.TargetBacklog] = {}
        self._client: aiohttp.ClientSession | None = None
        self._stopping: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Load configs, plan rows for new events from now on, and start every queue.

        A shared event log (known only once it is open, hence here and not in `__init__`) brings
        its own outbox and configs."""
        if self.log.shared is not None:
            self.store, self.configs = self.log.shared.webhooks(self.configs)
        await asyncio.to_thread(self.configs.load)
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout),
            headers={"User-Agent": USER_AGENT},
        )
        self.store.connect(self.route, self._committed, self._wake_all)
        for hook in self.configs.all():
            self._start_queue(hook)

    async def stop(self) -> None:
        """Stop every queue (rows in flight stay pending: they are sent again after a restart)."""
        self.store.connect(None, None, None)
        queues = list(self._queues.values())
        self._queues.clear()
        self._backlogs.clear()
        for queue in queues:
            await queue.stop()
        await self.store.release()
        if self._client is not None:
            await self._client.close()

    # ----- configs (the API calls these) --------------------------------------------------------
    def all(self) -> list[Webhook]:
        return self.configs.all()

    def get(self, webhook_id: str) -> Webhook | None:
        return self.configs.get(webhook_id)

    async def put(self, hook: Webhook) -> None:
        """Add or replace a webhook; its queue starts (or keeps its rows) at once."""
        await asyncio.to_thread(self.configs.put, hook)
        self._start_queue(hook)

    async def remove(self, webhook_id: str) -> bool:
        """Remove a webhook and forget its undelivered rows; True when there was one."""
        if not await asyncio.to_thread(self.configs.remove, webhook_id):
            return False
        queue = self._queues.pop(webhook_id, None)
        self._backlogs.pop(webhook_id, None)
        if queue is not None:
            await queue.stop()
        await self.store.drop_target(webhook_id)
        return True

    async def deliveries(
        self, webhook_id: str, state: outbox.RowState | None, after: int, limit: int
    ) -> list[outbox.Delivery]:
        return await self.store.deliveries(webhook_id, state, after, limit)

    async def redeliver(self, webhook_id: str, seqs: list[int] | None) -> int:
        """Put dead-lettered rows back in the queue; returns how many."""
        count = await self.store.redeliver(webhook_id, seqs)
        backlog = self._backlogs.get(webhook_id)
        if backlog is not None:
            backlog.invalidate()
        queue = self._queues.get(webhook_id)
        if queue is not None:
            queue.wake()
        return count

    async def stats(self, webhook_id: str) -> outbox.OutboxStats:
        return await self.store.stats(webhook_id)

    async def refresh_metrics(self) -> None:
        """Backlog, dead letters and oldest undelivered age per webhook (called on each scrape)."""
        now = time.time()
        for hook in self.configs.all():
            found = await self.stats(hook.id)
            WEBHOOK_BACKLOG.labels(webhook=hook.id).set(found.pending)
            WEBHOOK_DEAD.labels(webhook=hook.id).set(found.failed)
            age = 0.0 if found.oldest_pending_at is None else max(0.0, now - found.oldest_pending_at)
            WEBHOOK_OLDEST_AGE.labels(webhook=hook.id).set(age)

    # ----- planning and delivering ------------------------------------------------------------------
    def route(self, events: Sequence[Event]) -> list[OutboxRow]:
        """Outbox rows for a burst of events (runs on the loop, before the burst's transaction)."""
        hooks = self.configs.all()
        return [
            OutboxRow(target=hook.id, seq=event.seq, lane=event.session or "")
            for event in events
            for hook in hooks
            if hook.wants(event)
        ]

    def _committed(self, events: Sequence[Event], rows: list[OutboxRow]) -> None:
        by_seq = {event.seq: event for event in events}
        now = time.time()
        for row in rows:
            backlog = self._backlogs.get(row.target)
            if backlog is not None:
                backlog.offer(Job(id=str(row.seq), payload=by_seq.get(row.seq), key=row.lane, created_at=now,
                                  next_at=now))
        for target in {row.target for row in rows}:
            queue = self._queues.get(target)
            if queue is not None:
                queue.wake()

    def _wake_all(self) -> None:
        """Rows may be due that this node did not plan (another node's events, a claim that expired),
        or the configs changed on another node: start queues of new webhooks, stop removed ones, and
        look at every backlog."""
        current = {hook.id: hook for hook in self.configs.all()}
        for hook in current.values():
            self._start_queue(hook)
        for gone in [webhook_id for webhook_id in self._queues if webhook_id not in current]:
            queue = self._queues.pop(gone)
            self._backlogs.pop(gone, None)
            stopping = asyncio.ensure_future(queue.stop())
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
        for queue in self._queues.values():
            queue.wake()

    def _start_queue(self, hook: Webhook) -> None:
        if hook.id in self._queues:
            return
        backlog = self.store.backlog(hook.id)
        self._backlogs[hook.id] = backlog

        async def send(job: Job[Event | None]) -> None:
            await self._send(hook.id, job)

        queue: RetryingQueue[Event | None] = RetryingQueue(
            f"webhook-{hook.id}", send, backlog, self.policy,
            concurrency=self.settings.webhook_concurrency, on_outcome=self._outcome,
        )
        self._queues[hook.id] = queue
        queue.start()
        queue.wake()

    def _outcome(self, job: Job[Event | None], outcome: Outcome) -> None:
        WEBHOOK_DELIVERIES.labels(outcome=outcome.value).inc()
        if outcome is Outcome.DEAD:
            log.error("webhook delivery of event %s gave up after %d attempts: %s", job.id, job.attempts,
                      job.last_error or "see earlier warnings")

    async def _send(self, webhook_id: str, job: Job[Event | None]) -> None:
        hook = self.configs.get(webhook_id)
        if hook is None:
            raise DeliveryFailed(f"webhook {webhook_id} was removed", permanent=True)
        if job.payload is None:
            raise DeliveryFailed(f"event {job.id} is no longer in the event log", permanent=True)
        assert self._client is not None, "start() the dispatcher first"
        body = event_json(job.payload)
        now = time.time()
        headers = {
            "Content-Type": "application/json",
            "X-Bridge-Event": job.payload.kind,
            "X-Bridge-Delivery": str(job.payload.seq),
            **signing.headers(hook.secret, message_id(self.store.epoch, job.payload.seq), int(now), body),
        }
        try:
            async with self._client.post(hook.url, data=body, headers=headers, allow_redirects=False) as response:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.content.read(RESPONSE_LIMIT)
                if 200 <= response.status < 300:
                    return
                hint = retry_after_seconds(response.headers.get("Retry-After"), now)
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            hint = None
        log.warning("webhook %s (%s) event %d attempt %d failed: %s", hook.id, hook.url[:200], job.payload.seq,
                    job.attempts, problem[:300])
        raise DeliveryFailed(problem, retry_after=hint)
