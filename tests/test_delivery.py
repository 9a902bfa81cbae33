"""The one backoff policy (exponential, capped, jittered within documented bounds) and the one
retrying queue (lanes in order, concurrency per target, Retry-After, a retry horizon)."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from bridge.delivery import Backoff, DeliveryFailed, Job, MemoryBacklog, Outcome, RetryingQueue, RetryPolicy


def test_base_delay_doubles_per_attempt_and_stops_at_the_maximum() -> None:
    backoff = Backoff(1.0, 60.0)
    assert [backoff.base(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_huge_attempt_numbers_stay_at_the_maximum_without_overflow() -> None:
    backoff = Backoff(0.5, 30.0, factor=3.0)
    assert backoff.base(10**9) == 30.0
    assert backoff.delay(10**9) <= 30.0


def test_equal_jitter_waits_between_half_and_all_of_the_base() -> None:
    backoff = Backoff(1.0, 60.0, rng=random.Random(7))
    for attempt in range(1, 12):
        delays = [backoff.delay(attempt) for _ in range(200)]
        base = backoff.base(attempt)
        assert all(base / 2 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base / 4, "jitter must actually spread retries"


def test_full_jitter_may_retry_at_once_but_never_waits_longer_than_the_base() -> None:
    backoff = Backoff(2.0, 10.0, jitter="full", rng=random.Random(1))
    delays = [backoff.delay(3) for _ in range(500)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0


def test_no_jitter_is_exactly_the_base() -> None:
    backoff = Backoff(1.5, 100.0, factor=1.5, jitter="none")
    assert [backoff.delay(n) for n in (1, 2, 3)] == [1.5, 2.25, 3.375]


def test_attempt_zero_or_negative_counts_as_the_first() -> None:
    backoff = Backoff(1.0, 8.0, jitter="none")
    assert backoff.delay(0) == backoff.delay(-3) == 1.0


@pytest.mark.parametrize(("initial", "maximum", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)])
def test_nonsense_policies_are_refused(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum, factor)


# ----- the retrying queue ---------------------------------------------------------------------

FAST = RetryPolicy(Backoff(0.01, 0.05, jitter="none"), max_attempts=4)


class Target:
    """A receiver that records what it got and fails on demand."""

    def __init__(self, *, fail: dict[str, list[Exception]] | None = None, hold: float = 0.0) -> None:
        self.got: list[tuple[str | None, int]] = []
        self.times: dict[int, list[float]] = {}
        self.fail = fail or {}
        self.hold = hold
        self.active = 0
        self.most_active = 0

    async def send(self, job: Job[int]) -> None:
        self.times.setdefault(job.payload, []).append(time.monotonic())
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(self.hold)
            failures = self.fail.get(str(job.payload))
            if failures:
                raise failures.pop(0)
            self.got.append((job.key, job.payload))
        finally:
            self.active -= 1


async def run_queue(
    target: Target, items: list[tuple[str | None, int]], *, concurrency: int = 1, policy: RetryPolicy = FAST
) -> tuple[RetryingQueue[int], MemoryBacklog[int], list[tuple[int, Outcome]]]:
    outcomes: list[tuple[int, Outcome]] = []
    backlog: MemoryBacklog[int] = MemoryBacklog()
    queue = RetryingQueue("t", target.send, backlog, policy, concurrency=concurrency,
                          on_outcome=lambda job, outcome: outcomes.append((job.payload, outcome)))
    for key, value in items:
        backlog.add(value, key=key)
    queue.start()
    queue.wake()
    assert await queue.drain(10.0)
    await queue.stop()
    return queue, backlog, outcomes


async def test_jobs_of_one_lane_arrive_in_order_even_when_the_head_is_retried() -> None:
    target = Target(fail={"1": [DeliveryFailed("503"), DeliveryFailed("503")]})
    items = [("a", n) for n in range(1, 6)]
    _, _, outcomes = await run_queue(target, items, concurrency=4)
    assert target.got == items
    assert [o for o in outcomes if o[1] == Outcome.RETRY] == [(1, Outcome.RETRY)] * 2


async def test_a_stuck_lane_does_not_hold_up_the_others() -> None:
    target = Target(fail={"1": [DeliveryFailed("down")] * 3})
    _, _, _ = await run_queue(target, [("slow", 1), ("fast", 2), ("fast", 3)], concurrency=2)
    assert [p for _, p in target.got].index(2) < [p for _, p in target.got].index(1)
    assert {p for _, p in target.got} == {1, 2, 3}


async def test_concurrency_is_limited_per_target() -> None:
    target = Target(hold=0.02)
    await run_queue(target, [(f"s{n}", n) for n in range(12)], concurrency=3)
    assert target.most_active == 3
    assert len(target.got) == 12


async def test_retry_after_lengthens_the_wait_but_never_shortens_it() -> None:
    target = Target(fail={"7": [DeliveryFailed("429", retry_after=0.3)]})
    await run_queue(target, [(None, 7)])
    first, second = target.times[7]
    assert second - first >= 0.3


async def test_retry_after_is_capped_so_a_receiver_cannot_park_the_queue() -> None:
    policy = RetryPolicy(Backoff(0.01, 0.05, jitter="none"), max_attempts=3, retry_after_max=0.05)
    assert policy.next_attempt_at(1, 0.0, 100.0, retry_after=86400) == pytest.approx(100.05)


async def test_after_the_last_attempt_a_job_is_dead_and_the_rest_go_on() -> None:
    target = Target(fail={"1": [DeliveryFailed("down")] * 10})
    _, backlog, outcomes = await run_queue(target, [("a", 1), ("a", 2)])
    assert outcomes.count((1, Outcome.RETRY)) == 3 and (1, Outcome.DEAD) in outcomes
    assert target.got == [("a", 2)]
    assert await backlog.size() == 0


async def test_a_permanent_failure_is_not_retried() -> None:
    target = Target(fail={"1": [DeliveryFailed("410 gone", permanent=True)]})
    _, _, outcomes = await run_queue(target, [(None, 1)])
    assert outcomes == [(1, Outcome.DEAD)]


async def test_any_exception_counts_as_a_failed_attempt() -> None:
    target = Target(fail={"1": [RuntimeError("bug in a sink")]})
    _, _, outcomes = await run_queue(target, [(None, 1)])
    assert outcomes == [(1, Outcome.RETRY), (1, Outcome.DELIVERED)]


def test_the_horizon_gives_up_on_jobs_older_than_max_age() -> None:
    policy = RetryPolicy(Backoff(10.0, 10.0, jitter="none"), max_attempts=100, max_age=60.0)
    assert policy.next_attempt_at(1, created_at=0.0, now=40.0) == 50.0
    assert policy.next_attempt_at(2, created_at=0.0, now=55.0) is None


async def test_a_full_memory_backlog_drops_its_oldest_job_and_says_so() -> None:
    dropped: list[int] = []
    backlog: MemoryBacklog[int] = MemoryBacklog(3, on_drop=lambda job: dropped.append(job.payload))
    for n in range(5):
        backlog.add(n)
    assert dropped == [0, 1]
    assert [j.payload for j in await backlog.take_due(time.time() + 1, 10, frozenset())] == [2, 3, 4]


async def test_stop_cancels_an_attempt_in_flight() -> None:
    started = asyncio.Event()

    async def hang(job: Job[int]) -> None:
        started.set()
        await asyncio.sleep(30.0)

    backlog: MemoryBacklog[int] = MemoryBacklog()
    queue = RetryingQueue("t", hang, backlog, FAST)
    backlog.add(1)
    queue.start()
    queue.wake()
    await asyncio.wait_for(started.wait(), 5)
    assert not await queue.drain(0.05)
    await queue.stop()
    assert queue.in_flight == 0 and await backlog.size() == 1
