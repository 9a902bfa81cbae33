"""Short commits on the event loop's thread (bridge/store/inline.py).

Specification: one session's key batch and a small event log transaction run on the loop's own
thread while the gate is open; batches of several sessions and large transactions go to worker
threads; one commit slower than the gate's bound sends the following ones to worker threads for
the cooldown; `configure(enabled=False)` keeps every commit in worker threads. Whatever thread a
commit ran on, what it promises is unchanged (durable and readable once answered). Real journals
and real SQLite files.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bridge.eventlog import log as eventlog_log
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.store import group_commit, inline
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.inline import InlineGate

StoreFactory = Callable[..., AuthStore]


def _commits(store: str, where: str) -> float:
    return REGISTRY.get_sample_value("bridge_store_commits_total", {"store": store, "where": where}) or 0.0


def _journal_fsyncs() -> float:
    return REGISTRY.get_sample_value("bridge_store_fsyncs_total", {"target": "journal"}) or 0.0


@pytest.fixture
def threads_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str], list[int]]:
    """Record the thread each call of `owner.name` runs on."""

    def watch(owner: Any, name: str) -> list[int]:
        seen: list[int] = []
        real = getattr(owner, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, recording)
        return seen

    return watch


@pytest.fixture
def gates_enabled() -> Iterator[None]:
    inline.configure(enabled=True)
    yield
    inline.configure(enabled=True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fast_commit_runs_here_and_keeps_the_gate_open(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("journal", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)
    assert gate.open()
    assert gate.run(lambda: threading.get_ident()) == threading.get_ident()
    assert gate.open()


def taking(clock: Clock, seconds: float, result: str = "done") -> Callable[[], str]:
    def commit() -> str:
        clock.now += seconds
        return result

    return commit


def test_one_stalled_commit_closes_the_gate_until_commits_are_fast_again(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("journal", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)
    assert gate.run(taking(clock, 0.15)) == "done", "the stalled commit's result is kept"
    assert not gate.open()
    clock.now += 60
    assert not gate.open(), "a hanging disk completes no commit: nothing says it is fast again"
    threaded = 0
    while not gate.open():
        gate.threaded(0.002)
        threaded += 1
        assert threaded < 100, "fast threaded commits must open the gate again"
    assert threaded > 5, "one fast commit does not outweigh a stall"


def test_the_gate_stays_closed_for_the_cooldown_even_when_commits_are_fast_at_once(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("journal", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)
    gate.run(taking(clock, 0.2))
    for _ in range(100):
        gate.threaded(0.001)
    assert not gate.open()
    clock.now += 1.1
    assert gate.open()


def test_a_hiccup_keeps_the_gate_open_but_commits_slow_on_average_close_it(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("journal", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)
    for _ in range(20):
        gate.run(taking(clock, 0.0015))
    gate.run(taking(clock, 0.04))
    assert gate.open(), "one 40 ms commit among 1.5 ms ones (a checkpoint's syncfs beside it) is not a slow disk"
    for _ in range(20):
        gate.run(taking(clock, 0.0015))
    runs = 0
    while gate.open():
        gate.run(taking(clock, 0.015))
        runs += 1
        assert runs < 30, "commits of 15 ms on average must close the gate"
    assert runs > 3


def test_threaded_commits_that_grow_slow_keep_a_closed_gate_closed(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("journal", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)
    gate.run(taking(clock, 0.2))
    clock.now += 10
    for _ in range(200):
        gate.threaded(0.03)
    assert not gate.open(), "a disk that stays slow keeps the commits in threads"


def test_a_failing_stalled_commit_raises_its_error_and_still_closes_the_gate(gates_enabled: None) -> None:
    clock = Clock()
    gate = InlineGate("event_log", slow=0.01, stall=0.1, cooldown=1.0, clock=clock)

    def failing() -> None:
        clock.now += 0.2
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        gate.run(failing)
    assert not gate.open()


def test_disabled_gates_never_open(gates_enabled: None) -> None:
    inline.configure(enabled=False)
    assert not InlineGate("journal").open()


async def test_a_lone_sessions_batch_is_committed_on_the_loops_thread_and_is_durable_when_answered(
    make_store: StoreFactory, threads_of: Callable[[Any, str], list[int]], gates_enabled: None
) -> None:
    store = make_store("solo")
    seen = threads_of(group_commit, "run_group")
    before = _commits("journal", "loop"), _journal_fsyncs()
    await AsyncAuthStore(store).set_keys({"session": {"1.0": json.dumps({"v": 1})}})
    assert seen == [threading.get_ident()]
    assert _commits("journal", "loop") == before[0] + 1
    assert _journal_fsyncs() == before[1] + 1, "answered after its journal's fdatasync"
    assert store.get_keys("session", ["1.0"]) == {"1.0": json.dumps({"v": 1})}


async def test_batches_of_several_sessions_together_go_to_a_worker_thread(
    make_store: StoreFactory, threads_of: Callable[[Any, str], list[int]], gates_enabled: None
) -> None:
    stores = [AsyncAuthStore(make_store(f"m{i}")) for i in range(3)]
    seen = threads_of(group_commit, "run_group")
    before = _commits("journal", "thread")
    await asyncio.gather(*(s.set_keys({"session": {"1.0": json.dumps({"s": i})}}) for i, s in enumerate(stores)))
    assert seen and threading.get_ident() not in seen
    assert _commits("journal", "thread") > before
    for index, astore in enumerate(stores):
        assert await astore.get_keys("session", ["1.0"]) == {"1.0": json.dumps({"s": index})}


async def test_after_a_slow_commit_the_next_ones_go_to_a_worker_thread(
    make_store: StoreFactory, threads_of: Callable[[Any, str], list[int]], gates_enabled: None
) -> None:
    astore = AsyncAuthStore(make_store("slowdisk"))
    await astore.set_keys({"session": {"0.0": "{}"}})
    committer = group_commit._committers[asyncio.get_running_loop()]
    committer._gate.stall = 0.0  # every commit is a stall from now on
    seen = threads_of(group_commit, "run_group")
    for k in range(1, 4):
        await astore.set_keys({"session": {f"{k}.0": json.dumps({"k": k})}})
    assert seen[0] == threading.get_ident(), "the slow one itself ran inline"
    assert threading.get_ident() not in seen[1:], "the ones after it went to a worker thread"
    assert await astore.get_keys("session", ["3.0"]) == {"3.0": json.dumps({"k": 3})}


async def test_with_inline_commits_off_every_batch_goes_to_a_worker_thread(
    make_store: StoreFactory, threads_of: Callable[[Any, str], list[int]], gates_enabled: None
) -> None:
    inline.configure(enabled=False)
    astore = AsyncAuthStore(make_store("off"))
    seen = threads_of(group_commit, "run_group")
    await astore.set_keys({"session": {"1.0": "{}"}})
    assert seen and threading.get_ident() not in seen


@pytest.fixture
async def opened(tmp_path: Path, gates_enabled: None) -> AsyncIterator[tuple[EventBus, EventLog]]:
    bus = EventBus()
    log = EventLog(tmp_path / "state" / "events.db", bus)
    await log.open()
    yield bus, log
    await log.close()


async def test_a_small_event_log_burst_commits_on_the_loop_and_a_large_one_in_the_writer_thread(
    opened: tuple[EventBus, EventLog], threads_of: Callable[[Any, str], list[int]]
) -> None:
    bus, log = opened
    seen = threads_of(EventLog, "_commit")
    bus.publish("s1", "message", {"id": "M1"})
    assert await log.flush()
    assert seen == [threading.get_ident()], "one event: on the loop's thread"
    for n in range(eventlog_log.INLINE_MAX + 1):
        bus.publish("s1", "message", {"id": f"B{n}"})
    assert await log.flush()
    assert len(seen) == 2 and seen[1] != threading.get_ident(), "a burst past INLINE_MAX: the writer thread"
    rows = await log.read(lambda conn: conn.execute("SELECT count(*) FROM events").fetchone()[0])
    assert rows == eventlog_log.INLINE_MAX + 2


async def test_an_event_log_write_op_such_as_a_prune_goes_to_the_writer_thread(
    opened: tuple[EventBus, EventLog], threads_of: Callable[[Any, str], list[int]]
) -> None:
    _, log = opened
    seen = threads_of(EventLog, "_commit")
    assert await log.write(lambda conn: conn.execute("SELECT count(*) FROM events").fetchone()[0]) == 0
    assert seen and seen[0] != threading.get_ident(), "a write op may be large: never on the loop"
