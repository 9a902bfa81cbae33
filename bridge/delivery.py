"""Retrying delivery: the one backoff policy and the one per-target retrying queue.

Every retry loop (Node runtime restarts, session reconnects, alert and webhook deliveries,
snapshot retries) asks a `Backoff` how long to wait before attempt n, so a change of policy is
made once. `RetryingQueue` delivers one target's jobs (an alert sink, a webhook) with that
policy, `Retry-After`, a retry horizon and a concurrency limit; where the jobs wait is a
`Backlog`: `MemoryBacklog` for alerts, the event log's outbox for webhooks (durable, so a crash
loses nothing). What to deliver and to whom (dedupe, rate limits, filters) stays with the caller.

Why "equal" jitter by default: the delay of attempt n is uniform in [base/2, base], where
base = min(maximum, initial * factor**(n-1)). The lower half guarantees a retry never fires
almost at once after a failure (a crashing runtime cannot spin); the random upper half spreads
many tenants that failed together (a WhatsApp outage, a receiver restart) so they do not retry in
lockstep. "full" jitter (uniform in [0, base]) spreads better but may retry at once; "none" is
for tests and for callers that add their own spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from bridge.errors import BridgeError, ErrorCode
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")
Jitter = Literal["equal", "full", "none"]
_MAX_EXPONENT = 1000
_MIN_SLEEP = 0.001
_BACKLOG_RETRY = 1.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff, capped at `maximum`, with jitter (see the module docstring).

    `delay(attempt)` is pure apart from the random draw: callers keep their own attempt count
    (1 = the wait after the first failure) and reset it when things work again. `rng` is
    injectable so tests can check the bounds deterministically.
    """

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: Jitter = "equal"
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum (got {self.initial}, {self.maximum})")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1 (got {self.factor})")

    def base(self, attempt: int) -> float:
        """The delay before `attempt` (1-based) without jitter: initial * factor**(attempt-1), capped."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        try:
            raw = self.initial * self.factor**exponent
        except OverflowError:
            return self.maximum
        return min(self.maximum, raw)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (1-based), jittered; never more than `maximum`."""
        base = self.base(attempt)
        if self.jitter == "none":
            return base
        low = base / 2.0 if self.jitter == "equal" else 0.0
        return self.rng.uniform(low, base)


class DeliveryFailed(BridgeError):
    """A target could not take an item now. `retry_after` is the target's own hint in seconds
    (HTTP `Retry-After`, Telegram's `retry_after`); `permanent` means retrying cannot help."""

    code: str = ErrorCode.DELIVERY_FAILED

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, and when to give up (the "retry horizon").

    A target's `Retry-After` is honoured (it can only lengthen the wait), but never beyond
    `retry_after_max`, so a hostile or confused receiver cannot park a queue for days.
    """

    backoff: Backoff
    max_attempts: int
    max_age: float | None = None
    retry_after_max: float = 3600.0

    def next_attempt_at(
        self, attempts: int, created_at: float, now: float, retry_after: float | None = None, permanent: bool = False
    ) -> float | None:
        """Time of the next attempt after `attempts` failed ones, or None to give up."""
        if permanent or attempts >= self.max_attempts:
            return None
        wait = self.backoff.delay(attempts)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.retry_after_max))
        at = now + wait
        if self.max_age is not None and at - created_at > self.max_age:
            return None
        return at


@dataclass
class Job(Generic[T]):
    """One item for one target. Jobs with the same `key` are delivered one at a time, in order
    (a session's events); jobs without a key are independent."""

    id: str
    payload: T
    key: str | None = None
    attempts: int = 0
    created_at: float = 0.0
    next_at: float = 0.0
    last_error: str = ""

    @property
    def lane(self) -> str:
        """The ordering lane: the key, or the job's own id when it has none."""
        return self.key if self.key is not None else "\0" + self.id


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


class Backlog(Protocol[T]):
    """Where a queue's jobs wait: in memory (alerts) or in the event log's outbox (webhooks).

    `take_due` returns at most `limit` jobs whose time has come, oldest first, only the head of
    each lane and never a lane in `busy` (so a lane's order holds while its head is retried).
    """

    async def take_due(self, now: float, limit: int, busy: frozenset[str]) -> list[Job[T]]: ...

    async def next_due(self, busy: frozenset[str]) -> float | None: ...

    async def delivered(self, job: Job[T]) -> None: ...

    async def retry_at(self, job: Job[T], at: float, error: str) -> None: ...

    async def dead(self, job: Job[T], error: str) -> None: ...

    async def size(self) -> int: ...


class MemoryBacklog(Generic[T]):
    """A bounded in-memory backlog: when full, the oldest job not in flight is dropped and
    `on_drop` is told (the caller counts and logs it)."""

    def __init__(self, capacity: int = 1000, *, on_drop: Callable[[Job[T]], None] | None = None) -> None:
        self.capacity = capacity
        self._jobs: dict[str, Job[T]] = {}
        self._ids = itertools.count(1)
        self._on_drop = on_drop
        self._taken: set[str] = set()

    def add(self, payload: T, *, key: str | None = None, now: float | None = None) -> Job[T]:
        """Queue `payload`; never waits."""
        at = time.time() if now is None else now
        if len(self._jobs) >= self.capacity:
            victim = next((j for j in self._jobs.values() if j.id not in self._taken), None)
            if victim is not None:
                del self._jobs[victim.id]
                if self._on_drop is not None:
                    self._on_drop(victim)
        job = Job(id=str(next(self._ids)), payload=payload, key=key, created_at=at, next_at=at)
        self._jobs[job.id] = job
        return job

    def _heads(self, busy: frozenset[str]) -> list[Job[T]]:
        seen: set[str] = set()
        heads: list[Job[T]] = []
        for job in self._jobs.values():
            if job.lane in seen:
                continue
            seen.add(job.lane)
            if job.lane not in busy and job.id not in self._taken:
                heads.append(job)
        return heads

    async def take_due(self, now: float, limit: int, busy: frozenset[str]) -> list[Job[T]]:
        due = [j for j in self._heads(busy) if j.next_at <= now][:limit]
        self._taken.update(j.id for j in due)
        return due

    async def next_due(self, busy: frozenset[str]) -> float | None:
        return min((j.next_at for j in self._heads(busy)), default=None)

    async def delivered(self, job: Job[T]) -> None:
        self._taken.discard(job.id)
        self._jobs.pop(job.id, None)

    async def retry_at(self, job: Job[T], at: float, error: str) -> None:
        self._taken.discard(job.id)
        job.next_at, job.last_error = at, error

    async def dead(self, job: Job[T], error: str) -> None:
        self._taken.discard(job.id)
        self._jobs.pop(job.id, None)
        job.last_error = error

    async def size(self) -> int:
        return len(self._jobs)


Sender = Callable[[Job[T]], Awaitable[None]]
OutcomeHook = Callable[[Job[T], Outcome], None]


class RetryingQueue(Generic[T]):
    """Delivers one target's jobs with retries: at most `concurrency` attempts at once, lanes in
    order, waits from the `RetryPolicy`. Never blocks a producer: producers add to the backlog
    and call `wake()`.

    A failed attempt is any exception from `send` (a `DeliveryFailed` may carry `retry_after` or
    `permanent`). Jobs past the retry horizon go to the backlog's `dead` (a durable backlog keeps
    them as a dead-letter list). `stop()` cancels attempts in flight: a durable backlog still
    holds them, so they are tried again after a restart (at least once, never at most once).
    """

    def __init__(
        self,
        name: str,
        send: Sender[T],
        backlog: Backlog[T],
        policy: RetryPolicy,
        *,
        concurrency: int = 1,
        clock: Callable[[], float] = time.time,
        on_outcome: OutcomeHook[T] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.name = name
        self.backlog = backlog
        self.policy = policy
        self.concurrency = concurrency
        self._send = send
        self._clock = clock
        self._on_outcome = on_outcome
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def start(self) -> None:
        """Start the scheduler (idempotent; call inside the running loop)."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"delivery-{self.name}")

    def wake(self) -> None:
        """New work may be due: look at the backlog now instead of at the next planned time."""
        self._wake.set()

    async def drain(self, within: float = 10.0) -> bool:
        """Wait until the backlog is empty and nothing is in flight; False if `within` s passed."""
        try:
            async with asyncio.timeout(within):
                while self._inflight or await self.backlog.size():
                    self._settled.clear()
                    self.wake()
                    await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop the scheduler and cancel attempts in flight."""
        await cancel_and_wait([self._runner, *self._inflight.values()])
        self._inflight.clear()
        self._runner = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            busy = frozenset(self._inflight)
            free = self.concurrency - len(self._inflight)
            delay: float | None = None
            try:
                if free > 0:
                    now = self._clock()
                    for job in await self.backlog.take_due(now, free, busy):
                        self._inflight[job.lane] = asyncio.create_task(self._attempt(job))
                    if len(self._inflight) < self.concurrency:
                        upcoming = await self.backlog.next_due(frozenset(self._inflight))
                        if upcoming is not None:
                            delay = max(upcoming - self._clock(), _MIN_SLEEP)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery queue %s could not read its backlog; retrying", self.name)
                delay = _BACKLOG_RETRY
            if not self._inflight:
                self._settled.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _attempt(self, job: Job[T]) -> None:
        job.attempts += 1
        try:
            try:
                await self._send(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500] if not isinstance(exc, BridgeError) else exc.message[:500]
                hint = exc.retry_after if isinstance(exc, DeliveryFailed) else None
                permanent = isinstance(exc, DeliveryFailed) and exc.permanent
                at = self.policy.next_attempt_at(job.attempts, job.created_at, self._clock(), hint, permanent)
                if at is None:
                    await self.backlog.dead(job, error)
                    self._report(job, Outcome.DEAD)
                else:
                    await self.backlog.retry_at(job, at, error)
                    self._report(job, Outcome.RETRY)
            else:
                await self.backlog.delivered(job)
                self._report(job, Outcome.DELIVERED)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery queue %s could not record the outcome of job %s", self.name, job.id)
        finally:
            self._inflight.pop(job.lane, None)
            self._settled.set()
            self._wake.set()

    def _report(self, job: Job[T], outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(job, outcome)
