"""`LazyPool`: the store's worker thread pools, started on first use and afresh after a fork.

Why one class: the store keeps three pools (fsyncs and temp writes in `durable`, the journal's
file writers, the group commit's lanes) and each needs the same two things: no threads in a
process that never writes, and a working pool in a forked child (the crash tests fork writers),
which inherits the pool object but none of its threads.
"""

from __future__ import annotations

import os
import threading
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
