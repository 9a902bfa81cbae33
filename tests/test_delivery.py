"""The one backoff policy: exponential, capped, jittered within documented bounds."""

from __future__ import annotations

import random

import pytest

from bridge.delivery import Backoff


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
