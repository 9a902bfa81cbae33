"""Alerts: what the operator is told, and how it reaches them without ever slowing the monitor.

The monitor and the sessions publish `alert` events on the EventBus (`bus.alert(...)`). The
`Alerter` turns each into an `Alert`, drops repeats (one per alert kind per session per
`Settings.alert_window`; a more severe alert of the same kind still goes through, and so does
the `resolved` one saying a condition is over, which also re-arms the kind), and hands it to
every sink's own delivery queue (bridge/delivery.py: a bounded `MemoryBacklog` and a
`RetryingQueue`). A Telegram outage never delays the log sink, and `submit()` never awaits
anything: a full backlog drops its oldest alert (counted as failed) rather than block the code
that detected the incident. Failed sends are retried with the bridge's one `Backoff` (honouring
Telegram's `retry_after`) and counted in `ALERTS_FAILED`; delivered alerts in `ALERTS_SENT`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp
import msgspec

from bridge.config import Settings
from bridge.delivery import Backoff, DeliveryFailed, Job, MemoryBacklog, Outcome, RetryingQueue, RetryPolicy
from bridge.errors import AlertError
from bridge.events import Event, EventBus, EventKind, Severity
from bridge.metrics import ALERTS_FAILED, ALERTS_SENT

log = logging.getLogger("bridge.alerts")

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
TELEGRAM_MAX_TEXT = 4096
_SEVERITY_MARK = {"info": "ℹ️", "warning": "⚠️", "critical": "🔴"}


class Alert(msgspec.Struct, frozen=True):
    """One thing an operator must know about. `kind` is stable (e.g. `creds_deleted`)."""

    kind: str
    severity: Severity
    message: str
    session: str | None = None
    ts: float = 0.0
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Event) -> Alert:
        """Build from an `alert` event as published by `EventBus.alert`."""
        data = dict(event.data)
        kind = str(data.pop("alert", "alert"))
        severity = str(data.pop("severity", "warning"))
        message = str(data.pop("message", kind))
        if severity not in SEVERITY_RANK:
            severity = "warning"
        return cls(
            kind=kind,
            severity=severity,  # type: ignore[arg-type]  # checked against SEVERITY_RANK above
            message=message,
            session=event.session,
            ts=event.ts,
            extra=data,
        )

    def text(self, source: str = "baileys-bridge") -> str:
        """Plain text for chat sinks (no markup: nothing in a message needs escaping)."""
        mark = _SEVERITY_MARK.get(self.severity, "")
        lines = [f"{mark} {self.severity.upper()} {self.kind}".strip(), f"source: {source}"]
        if self.session is not None:
            lines.append(f"session: {self.session}")
        lines.append(self.message)
        for key, value in sorted(self.extra.items()):
            lines.append(f"{key}: {value}")
        text = "\n".join(lines)
        return text if len(text) <= TELEGRAM_MAX_TEXT else text[: TELEGRAM_MAX_TEXT - 1] + "…"


class AlertDeliveryError(DeliveryFailed):
    """A sink could not deliver; `retry_after` (s) is the sink's own hint, if it gave one. The
    delivery queue (bridge/delivery.py) retries it."""


@runtime_checkable
class AlertSink(Protocol):
    """Somewhere alerts go. `send` raises `AlertError` on failure; the Alerter retries."""

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class LogSink:
    """Writes alerts to the Python log: always on, so no alert is ever silent."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    async def send(self, alert: Alert) -> None:
        level = {"info": logging.INFO, "warning": logging.WARNING}.get(alert.severity, logging.CRITICAL)
        self._log.log(
            level,
            "ALERT %s session=%s: %s %s",
            alert.kind,
            alert.session,
            alert.message,
            alert.extra or "",
        )

    async def aclose(self) -> None:
        return None


class TelegramSink:
    """Telegram Bot API `sendMessage`. The base URL is configurable so tests use a local server.

    The token is part of the URL, so it never appears in an error message or a log line.
    """

    name = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_base: str = "https://api.telegram.org",
        timeout: float = 10.0,
        source: str = "baileys-bridge",
    ) -> None:
        if not token or not chat_id:
            raise AlertError("Telegram alerts need both BRIDGE_TELEGRAM_TOKEN and BRIDGE_TELEGRAM_CHAT_ID")
        self._url = f"{api_base.rstrip('/')}/bot{token}/sendMessage"
        self._chat_id = chat_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._source = source
        self._http: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> None:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        payload = {"chat_id": self._chat_id, "text": alert.text(self._source), "disable_web_page_preview": True}
        try:
            async with self._http.post(self._url, json=payload) as resp:
                body: Any = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = type(exc).__name__
            raise AlertDeliveryError(f"Telegram unreachable ({reason}); check BRIDGE_TELEGRAM_API") from None
        if status == 200 and isinstance(body, dict) and body.get("ok") is True:
            return
        retry_after: float | None = None
        description = ""
        if isinstance(body, dict):
            description = str(body.get("description", ""))[:200]
            params = body.get("parameters")
            if isinstance(params, dict) and isinstance(params.get("retry_after"), int | float):
                retry_after = float(params["retry_after"])
        raise AlertDeliveryError(
            f"Telegram refused the alert (HTTP {status}: {description}); check token and chat id",
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def sinks_from_settings(settings: Settings) -> list[AlertSink]:
    """The log sink always; Telegram when both token and chat id are set."""
    sinks: list[AlertSink] = [LogSink()]
    if settings.telegram_token and settings.telegram_chat_id:
        sinks.append(
            TelegramSink(settings.telegram_token, settings.telegram_chat_id, api_base=settings.telegram_api)
        )
    return sinks


@dataclass
class _WindowEntry:
    sent_at: float
    severity: str
    suppressed: int = 0


@dataclass
class AlerterStats:
    """Counters for tests and the operator (`/metrics` has the same numbers per sink)."""

    submitted: int = 0
    suppressed: int = 0
    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    dropped: int = 0


class Alerter:
    """De-duplicates, rate-limits and delivers alerts to sinks, never blocking the caller.

    What to send (the window, severity, `resolved`) is decided here; how is the bridge's one
    retrying delivery: each sink has its own `RetryingQueue` over a bounded `MemoryBacklog`, with
    delays from `Backoff` and the sink's `retry_after` honoured.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        window: float,
        max_attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        queue_size: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sinks = list(sinks)
        self.window = window
        self.max_attempts = max(1, max_attempts)
        self.stats = AlerterStats()
        self._clock = clock
        self._recent: dict[tuple[str | None, str], _WindowEntry] = {}
        self.policy = RetryPolicy(Backoff(backoff_initial, max(backoff_initial, backoff_max)), self.max_attempts)
        self._backlogs: dict[str, MemoryBacklog[Alert]] = {}
        self._queues: dict[str, RetryingQueue[Alert]] = {}
        for sink in self.sinks:
            backlog = MemoryBacklog[Alert](queue_size, on_drop=functools.partial(self._dropped, sink))
            self._backlogs[sink.name] = backlog
            self._queues[sink.name] = RetryingQueue(
                f"alerts-{sink.name}", functools.partial(self._send, sink), backlog, self.policy,
                on_outcome=functools.partial(self._outcome, sink),
            )

    @classmethod
    def from_settings(cls, settings: Settings, sinks: Sequence[AlertSink] | None = None) -> Alerter:
        return cls(
            sinks if sinks is not None else sinks_from_settings(settings),
            window=settings.alert_window,
            max_attempts=settings.alert_max_attempts,
            backoff_initial=settings.alert_backoff_initial,
            backoff_max=settings.alert_backoff_max,
        )

    def start(self) -> None:
        """Start one delivery queue per sink (idempotent)."""
        for queue in self._queues.values():
            queue.start()

    def submit(self, alert: Alert) -> bool:
        """Queue an alert for every sink unless it repeats one inside the window. Never waits."""
        self.stats.submitted += 1
        now = self._clock()
        key = (alert.session, alert.kind)
        entry = self._recent.get(key)
        if alert.extra.get("resolved") is True:
            # "It is over" is never a repeat, and the next episode of the same kind must be heard.
            self._recent.pop(key, None)
            entry = None
        elif (
            entry is not None
            and now - entry.sent_at < self.window
            and SEVERITY_RANK[alert.severity] <= SEVERITY_RANK.get(entry.severity, 0)
        ):
            entry.suppressed += 1
            self.stats.suppressed += 1
            return False
        if entry is not None and entry.suppressed:
            alert = msgspec.structs.replace(alert, extra={**alert.extra, "suppressed_repeats": entry.suppressed})
        if alert.extra.get("resolved") is not True:
            self._recent[key] = _WindowEntry(sent_at=now, severity=alert.severity)
        self._forget_old(now)
        for sink in self.sinks:
            self._backlogs[sink.name].add(alert)
            self._queues[sink.name].wake()
        return True

    def _dropped(self, sink: AlertSink, job: Job[Alert]) -> None:
        self.stats.dropped += 1
        ALERTS_FAILED.labels(sink=sink.name).inc()
        log.error("alert queue of sink %s is full; dropped its oldest alert (%s)", sink.name, job.payload.kind)

    async def _send(self, sink: AlertSink, job: Job[Alert]) -> None:
        try:
            await sink.send(job.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.failed_attempts += 1
            ALERTS_FAILED.labels(sink=sink.name).inc()
            log.warning("alert %s to %s failed (attempt %d/%d): %s",
                        job.payload.kind, sink.name, job.attempts, self.max_attempts, exc)
            raise

    def _outcome(self, sink: AlertSink, job: Job[Alert], outcome: Outcome) -> None:
        alert = job.payload
        if outcome is Outcome.DELIVERED:
            self.stats.sent += 1
            ALERTS_SENT.labels(sink=sink.name, severity=alert.severity).inc()
        elif outcome is Outcome.DEAD:
            self.stats.given_up += 1
            log.error("alert %s for session %s was not delivered to %s; giving up", alert.kind, alert.session,
                      sink.name)

    async def consume(self, bus: EventBus, after: int | None = None) -> None:
        """Route every `alert` event of the bus (after seq `after`, if given) into `submit` until cancelled."""
        async for event in bus.subscribe(after=after):
            if event.kind == EventKind.ALERT:
                self.submit(Alert.from_event(event))

    async def drain(self, within: float = 10.0) -> bool:
        """Wait until every queued alert was delivered or given up; False if `within` s passed."""
        deadline = time.monotonic() + within
        for queue in self._queues.values():
            if not await queue.drain(max(0.0, deadline - time.monotonic())):
                return False
        return True

    async def aclose(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by `drain_timeout`), then stop the queues and close sinks."""
        await self.drain(drain_timeout)
        for queue in self._queues.values():
            await queue.stop()
        for sink in self.sinks:
            try:
                await sink.aclose()
            except Exception:
                log.exception("closing alert sink %s failed", sink.name)

    def _forget_old(self, now: float) -> None:
        if len(self._recent) < 1024:
            return
        for key in [k for k, e in self._recent.items() if now - e.sent_at >= self.window]:
            del self._recent[key]
