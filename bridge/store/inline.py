"""`InlineGate`: whether a short commit may run on the event loop's own thread instead of a worker.

Why: a sequential send makes two small durable commits, the keys' journal record and the message's
row in the event log (an fdatasync of a few KB each, 0.2-0.8 ms on a local disk). Handed to a worker
thread, each also costs two wake-ups and two GIL hand-overs, which on two shared cores measured
0.5-1.2 ms each way: more than the commit itself, and on the send's critical path
(docs/performance.md, "2026-12-03: short commits on the event loop"). Run on the loop they cost
only themselves, but they block the loop meanwhile, which is acceptable only while they are
short. So the gate keeps a moving average of the store's commits (about the last ten, wherever
they ran) and closes when it passes `slow` (10 ms: a slow or busy disk) or when one inline commit
takes longer than `stall` (100 ms). An average, not each commit: on two busy cores a commit is now
and then preempted, and a checkpoint's syncfs delays the fdatasyncs beside it by tens of ms; closing
on each such hiccup (the first version closed for 30 s on any commit over 5 ms) kept the gate
closed for whole benchmark rounds. A closed gate sends commits to the worker threads, which still
report how long each took, and opens again once the average is back under `slow`, at least
`cooldown` (1 s) later. While a disk hangs no commit completes, so the gate stays closed. The
callers also keep large commits in threads (a group of several journals, a burst of many events,
a prune): only what is short by construction comes here.

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

SLOW: Final = 0.01
"""The moving average (s) of commits above which the gate closes, and below which it opens again."""
STALL: Final = 0.1
"""One inline commit longer than this (s) closes the gate at once."""
WEIGHT: Final = 0.1
"""Weight of the newest commit in the moving average."""
COOLDOWN: Final = 1.0
"""The least time (s) a closed gate sends commits to the worker threads."""

_enabled = True


def configure(*, enabled: bool) -> None:
    """Set once at start-up from `Settings.inline_commits` (module docstring: the trade-off).

    A module switch, like `group_commit.configure`: the gates belong to stores made in many places
    that have no settings at hand.
    """
    global _enabled
    _enabled = enabled


class InlineGate:
    """One store's gate (`store` labels its metrics: `journal`, `event_log`)."""

    def __init__(self, store: str, *, slow: float = SLOW, stall: float = STALL, cooldown: float = COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.slow = slow
        self.stall = stall
        self.cooldown = cooldown
        self._clock = clock
        self._closed = False
        self._closed_at = 0.0
        self.average = 0.0
        """Moving average (s) of this store's commits, inline or threaded (hand-over included)."""

    def open(self) -> bool:
        """Whether the next commit may run inline (module docstring: when it closes and opens)."""
        if not _enabled:
            return False
        if self._closed and self.average < self.slow and self._clock() - self._closed_at >= self.cooldown:
            self._closed = False
            log.info("%s: commits average %.1f ms again; short ones run on the event loop", self.store,
                     self.average * 1000)
        return not self._closed

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
                self.average = max(self.average, took)
                self._closed, self._closed_at = True, self._clock()
                log.info("%s: a commit on the event loop took %.1f ms (average %.1f ms); commits go to worker "
                         "threads until they average under %.0f ms", self.store, took * 1000,
                         self.average * 1000, self.slow * 1000)

    def threaded(self, took: float) -> None:
        """A commit the caller ran in a worker thread took `took` s (hand-over included)."""
        INLINE_COMMITS.labels(self.store, "thread").inc()
        self.average += WEIGHT * (took - self.average)
