"""`LazyPool`: the store's worker thread pools, started on first use and afresh after a fork.

Why one class: the store keeps three pools (fsyncs and temp writes in `durable`, the journal's
file writers, the group commit's lanes) and each needs the same two things: no threads in a
process that never writes, and a working pool in a forked child (the crash tests fork writers),
which inherits the pool object but none of its threads.

`Later` hands work to such a pool after a delay (the journal's drains wait to coalesce) from one
timer thread, so a delay never occupies a pool thread and costs no thread per call.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class LazyPool:
    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        """The pool (started now if this process has none yet)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._name)
            return self._pool


class Later:
    """Submit callables to `pool` once their delay has passed (one daemon timer thread, lazily)."""

    def __init__(self, pool: LazyPool, name: str) -> None:
        self._pool = pool
        self._name = name
        self._order = itertools.count()
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], object]) -> None:
        """Run `fn` in the pool in `delay` seconds (never sooner; later when the pool is busy)."""
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or (wait := self._due[0][0] - time.monotonic()) > 0:
                    self._cond.wait(None if not self._due else wait)
                _, _, fn = heapq.heappop(self._due)
            try:
                self._pool.get().submit(fn)
            except RuntimeError:  # the pool is shut down (interpreter exit): run it here
                fn()
