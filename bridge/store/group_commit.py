"""Group commit across sessions: the `keys.set` batches of every session that arrive together share one worker job.

Why: each session has its own journal (bridge/store/journal.py says why), so a batch costs one
fdatasync of its own journal. Run one worker thread per batch (`asyncio.to_thread`, the way before)
and 50 sessions writing single keys at once spend much of their time handing the GIL between six
pool threads: strace counted ~50 futex calls per key (~23 now; docs/performance.md, "Journal").
Here one job per group:

1. `AuthStore.stage_keys` for every batch, in the worker: validate and append each record to its
   journal (no fsync yet);
1b. when the group touches at least SYNCFS_MIN_JOURNALS journals of one file system, ONE `syncfs`
   of that file system makes all their records durable (`journal_log.sync_together`) and the
   worker finishes those batches itself (step 2 without the fdatasync and without lanes);
2. splits the group's other journals into up to SYNC_LANES lanes (the worker and helper threads; every
   journal's batches in one lane, in order), and each lane, for each of its batches,
   `AuthStore.acknowledge_keys` (the first wait on a journal fdatasyncs it: concurrent fdatasyncs
   of different files overlap in the disk) and then `Journal.materialise(later=True)`: the legacy
   files are written by the journal's worker after the answer (`Materialise.BACKGROUND`: bounded
   lag, creds.json inline), because they were the largest cost left in each send's critical
   section (docs/performance.md);

then wakes the event loop once for the whole group. A group made of one session's batches (what
a lone sender makes) runs on the event loop's own thread instead, while `bridge.store.inline`'s
gate is open: handing it to a worker and back cost more than the commit itself. A batch is
answered once its own record is durable and its values are served by the journal (its overlay
until its files exist); a crash
before the files are written is replayed from the journal at the next open, and everything that
reads the folder alone (stop, snapshot, restore, export) checkpoints first. Only the threads and
the moment the files appear differ from a lone `set_keys`. One group runs at a time per event
loop; batches that arrive meanwhile (or that the tasks the last group woke submit at once) form
the next group. A failure of one batch fails only that batch's caller, with one exception: a
failed syncfs fails every batch it was covering (it cannot say whose page did not reach the disk),
as a failed fdatasync fails every batch of its journal.

Why syncfs (1b): 50 fdatasyncs, even overlapped from 8 lanes, cost more than one syncfs that
writes the same 50 journal pages and flushes the disk cache once (50 sessions writing single
keys: 0.65 vs 2.1 of legacy, docs/performance.md). Why not always: syncfs writes back every
dirty page of the file system, not only ours: the legacy files the journals' workers wrote since
the last checkpoint (no fsync, that is their design) and other processes' writes. Below
SYNCFS_MIN_JOURNALS it gains nothing measurable; under heavy unrelated writes on the same file
system it can take much longer than the fdatasyncs it replaces, hence the switch (`configure`,
`BRIDGE_JOURNAL_SYNCFS`). Why it is safe, and why only on Linux >= 5.8 with a descriptor opened
before the first append of every journal it covers: journal_log.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Final

import msgspec

from bridge.store.inline import InlineGate
from bridge.store.journal import Staged
from bridge.store.journal_log import JournalLog, SharedSync, sync_together
from bridge.store.pool import LazyPool

if TYPE_CHECKING:
    from bridge.store.auth_store import AuthStore

log = logging.getLogger(__name__)

Batch = Mapping[str, Mapping[str, str | None]]

#: The journals of one group are finished from this many threads at once (the worker itself and
#: SYNC_LANES - 1 helpers): concurrent fdatasyncs of different files overlap in the disk (50 of
#: them took 5.4 ms one after the other and 2.2 ms from 8 threads here), while each helper costs
#: one thread handoff per group, not per batch. 2, 4, 8 and 16 lanes measured 0.67, 0.81, 0.80
#: and 0.90 of legacy (medians of 8, within this machine's noise). (Those figures were taken while
#: the lanes also wrote the legacy files; the journal's worker writes them now, see step 2 above.)
SYNC_LANES: Final = 8
#: Fewer journals than this per lane are fdatasynced by the worker alone (a handoff costs more).
MIN_JOURNALS_PER_LANE: Final = 4
_POOL = LazyPool(SYNC_LANES - 1, "journal-sync")
#: A group makes the journals of one file system durable with one syncfs when it touches at least
#: this many of them (docs/performance.md: 2, 4 and 8 measured).
SYNCFS_MIN_JOURNALS: Final = 4
_syncfs = True


def configure(*, syncfs: bool) -> None:
    """Set once at start-up from `Settings.journal_syncfs` (the module docstring says the trade-off).

    A module switch, not a parameter: the group commit is shared by every session of the process,
    and AuthStores are made in many places that have no settings at hand.
    """
    global _syncfs
    _syncfs = syncfs


class GroupStats(msgspec.Struct):
    """Groups run and batches they carried since the process started (tests and benchmarks read it)."""

    groups: int = 0
    batches: int = 0
    #: Step 1b: the times one syncfs covered a group's journals of one file system, and how many journals.
    syncfs: int = 0
    syncfs_journals: int = 0


stats = GroupStats()


class _Job:
    __slots__ = ("batch", "future", "store")

    def __init__(self, store: AuthStore, batch: Batch, future: asyncio.Future[None]) -> None:
        self.store = store
        self.batch = batch
        self.future = future


class _Committer:
    """The queue of one event loop: at most one group in a worker thread at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: list[_Job] = []
        self._busy = False
        self._gate = InlineGate("journal")

    def submit(self, store: AuthStore, batch: Batch) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.append(_Job(store, batch, future))
        if not self._busy:
            self._busy = True
            self._loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        """Send the queue to a worker; scheduled with `call_soon` so every batch submitted in this
        turn of the loop (or by the tasks the last group woke) joins the group."""
        if not self._queue:
            self._busy = False
            return
        jobs, self._queue = self._queue, []
        stats.groups += 1
        stats.batches += len(jobs)
        batches = [(job.store, job.batch) for job in jobs]
        if len({id(job.store) for job in jobs}) == 1 and self._gate.open():
            try:
                errors = self._gate.run(run_group, batches)
            except BaseException as exc:  # pragma: no cover - run_group catches per batch
                errors = [exc] * len(jobs)
            self._finish(jobs, errors)
            return
        started = time.perf_counter()
        done = self._loop.run_in_executor(None, run_group, batches)
        done.add_done_callback(lambda finished: self._finished(jobs, finished, started))

    def _finished(self, jobs: list[_Job], finished: asyncio.Future[list[BaseException | None]],
                  started: float) -> None:
        self._gate.threaded(time.perf_counter() - started)
        try:
            errors = finished.result()
        except BaseException as exc:  # pragma: no cover - run_group catches per batch
            errors = [exc] * len(jobs)
        self._finish(jobs, errors)

    def _finish(self, jobs: list[_Job], errors: list[BaseException | None]) -> None:
        for job, error in zip(jobs, errors, strict=True):
            if job.future.done():
                continue
            if error is None:
                job.future.set_result(None)
            else:
                job.future.set_exception(error)
        self._loop.call_soon(self._start)


_committers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Committer] = weakref.WeakKeyDictionary()


async def set_keys(store: AuthStore, batch: Batch) -> None:
    """`store.set_keys(batch)` in the next group of this event loop; returns once it is durable."""
    loop = asyncio.get_running_loop()
    committer = _committers.get(loop)
    if committer is None:
        committer = _committers[loop] = _Committer(loop)
    await committer.submit(store, batch)


def run_group(batches: list[tuple[AuthStore, Batch]]) -> list[BaseException | None]:
    """Steps 1-3 of the module docstring for every batch (blocking); returns each batch's error or None."""
    errors: list[BaseException | None] = [None] * len(batches)
    staged: list[tuple[int, Staged]] = []
    for index, (store, batch) in enumerate(batches):
        try:
            one = store.stage_keys(batch)
        except Exception as exc:
            errors[index] = exc
            continue
        if one is not None:
            staged.append((index, one))

    def finish(lane: list[tuple[int, Staged]]) -> None:
        for index, one in lane:
            try:
                batches[index][0].acknowledge_keys(one)
            except Exception as exc:
                errors[index] = exc
        for index, one in lane:
            if errors[index] is not None:
                continue
            try:
                one.journal.materialise(one, later=True)
            except Exception:  # pragma: no cover - materialise keeps its own errors; the batch is durable
                log.exception("journal %s: writing the files of record %d failed", one.journal.folder, one.seq)

    synced = _sync_file_systems(staged) if _syncfs else set()
    if synced:
        finish([item for item in staged if id(item[1].journal) in synced])
        staged = [item for item in staged if id(item[1].journal) not in synced]
    helpers: list[Future[None]] = []
    for number, lane in enumerate(_lanes(staged)):
        try:
            if number:
                helpers.append(_POOL.get().submit(finish, lane))
                continue
        except RuntimeError:  # the pool is shut down (interpreter exit): every staged batch still finishes
            pass
        finish(lane)
    for helper in helpers:
        helper.result()
    return errors


def _sync_file_systems(staged: list[tuple[int, Staged]]) -> set[int]:
    """Step 1b: one syncfs per file system that holds at least SYNCFS_MIN_JOURNALS of the group's
    journals; returns the ids of the journals it covered (durable, or failed by the syncfs)."""
    by_file_system: dict[int, tuple[SharedSync, dict[int, JournalLog]]] = {}
    for _, one in staged:
        shared = one.journal.log.file_system
        if shared is not None:
            by_file_system.setdefault(id(shared), (shared, {}))[1][id(one.journal)] = one.journal.log
    covered: set[int] = set()
    for shared, logs in by_file_system.values():
        if len(logs) < SYNCFS_MIN_JOURNALS or not sync_together(list(logs.values()), shared):
            continue
        stats.syncfs += 1
        stats.syncfs_journals += len(logs)
        covered.update(logs)
    return covered


def _lanes(staged: list[tuple[int, Staged]]) -> list[list[tuple[int, Staged]]]:
    """Split the group into at most SYNC_LANES lists, every journal's batches in one list, in order."""
    by_journal: dict[int, list[tuple[int, Staged]]] = {}
    for item in staged:
        by_journal.setdefault(id(item[1].journal), []).append(item)
    count = min(SYNC_LANES, -(-len(by_journal) // MIN_JOURNALS_PER_LANE))
    lanes: list[list[tuple[int, Staged]]] = [[] for _ in range(count)]
    for number, items in enumerate(by_journal.values()):
        lanes[number % count].extend(items)
    return lanes
