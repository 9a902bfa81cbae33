"""`InlineGate`: whether a short commit may run on the event loop's own thread instead of a worker.

Why: a sequential send makes two small durable commits, the keys' journal record and the message's
row in the event log (an fdatasync of a few KB each, 0.2-0.8 ms on a local disk). Handed to a worker
thread, each also costs two wake-ups and two GIL hand-overs, which on two shared cores measured
0.5-1.2 ms each way: more than the commit itself, and on the send's critical path
(docs/performance.md, "2026-12-03: short commits on the event loop"). Run on the loop they cost
only themselves, but they block the loop meanwhile, which is acceptable only while they are
short. So the gate times every commit it runs inline and closes when their moving average passes
`slow` (5 ms: a slow or busy disk) or one of them takes longer than `stall` (100 ms). An average,
not each commit: on two busy cores a commit is now and then preempted for a few ms, and closing on
every such hiccup kept the gate closed most of the time. A closed gate sends commits to the worker
threads, which still report how long each took, and opens again after `cooldown` (1 s) once
`REOPEN_AFTER` (20) of them in a row took less than `slow`: the disk is fast again (the first
seconds of a start, when every session uploads its keys at once, often close it). While a disk
hangs no commit completes, so the gate stays closed. The callers also keep large commits in threads (a group of several
journals, a burst of many events): only what is short by construction comes here.

What it cannot do: interrupt a commit that hangs. A disk that stops answering blocks the loop for
as long as the first inline fdatasync waits (a worker thread would have kept the API and the
health checks answering meanwhile). `BRIDGE_INLINE_COMMITS=false` (`configure`) keeps every commit
in threads: the choice for network or otherwise unpredictable disks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

from bridge.metrics import INLINE_COMMITS

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

SLOW: Final = 0.005
"""The moving average (s) of inline commits above which the gate closes."""
STALL: Final = 0.1
"""One inline commit longer than this (s) closes the gate at once."""
WEIGHT: Final = 0.2
"""Weight of the newest commit in the moving average."""
COOLDOWN: Final = 1.0
"""The least time (s) a closed gate sends commits to the worker threads."""
REOPEN_AFTER: Final = 20
"""Threaded commits in a row faster than `SLOW` that open a closed gate again."""

_enabled = True


def configure(*, enabled: bool) -> None:
    """Set once at start-up from `Settings.inline_commits` (module docstring: the trade-off).

    A module switch, like `group_commit.configure`: the gates belong to stores made in many places
    that have no settings at hand.
    """
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    """Whether commits may run inline at all (`configure`)."""
    return _enabled


class InlineGate:
    """One store's gate (`store` labels its metrics: `journal`, `event_log`)."""

    def __init__(self, store: str, *, slow: float = SLOW, stall: float = STALL, cooldown: float = COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.slow = slow
        self.stall = stall
        self.cooldown = cooldown
        self._clock = clock
        self._closed_until = 0.0
        self._fast = REOPEN_AFTER
        self.average = 0.0
        """Moving average (s) of the inline commits since the gate last opened."""

    def open(self) -> bool:
        """Whether the next commit may run inline (module docstring: when it closes and opens)."""
        return _enabled and self._fast >= REOPEN_AFTER and self._clock() >= self._closed_until

    def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `fn` here and now, timing it; a slow average or a stall closes the gate (its result or
        error is kept)."""
        started = self._clock()
        try:
            return fn(*args, **kwargs)
        finally:
            took = self._clock() - started
            INLINE_COMMITS.labels(self.store, "loop").inc()
            self.average += WEIGHT * (took - self.average)
            if took > self.stall or self.average > self.slow:
                self._closed_until = self._clock() + self.cooldown
                self._fast = 0
                log.info("%s: a commit on the event loop took %.1f ms (average %.1f ms); commits go to worker "
                         "threads until %d in a row take under %.0f ms", self.store, took * 1000,
                         self.average * 1000, REOPEN_AFTER, self.slow * 1000)
                self.average = 0.0

    def threaded(self, took: float) -> None:
        """A commit the caller ran in a worker thread took `took` s (hand-over included)."""
        INLINE_COMMITS.labels(self.store, "thread").inc()
        self._fast = self._fast + 1 if took < self.slow else 0
