"""The registry writes less without weakening done-or-unchanged (issue 19): changes that arrive
while a write is in flight share the next write, and each caller still returns only once ITS
change is durable (or raises, with it nowhere); a change that changes nothing writes nothing; a
state a session only passes through waits in memory for the next write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from bridge.errors import SessionNotFound, StoreError
from bridge.sessions.registry import RecordStore, Registry, SessionRecord
from bridge.sessions.state import SessionState
from tests.sessions.disk import small_disk

IDS = [f"s{i}" for i in range(8)]


class GatedStore:
    """The registry's own store, whose writes wait at a gate: a slow disk the test controls."""

    writes_all_records = True

    def __init__(self, real: RecordStore) -> None:
        self.real = real
        self.gate = threading.Event()
        self.entered = threading.Event()

    def read_all(self) -> dict[str, SessionRecord]:
        return self.real.read_all()

    def write(self, record: SessionRecord, records: dict[str, SessionRecord]) -> None:
        self.entered.set()
        assert self.gate.wait(30)
        self.real.write(record, records)


def _registry(folder: Path) -> tuple[Registry, GatedStore]:
    registry = Registry(folder)
    for sid in IDS:
        registry.put(SessionRecord(id=sid))
    gated = GatedStore(registry.store)
    registry.store = gated
    return registry, gated


def _queue_behind_a_write(
    registry: Registry, gated: GatedStore, pool: ThreadPoolExecutor
) -> list[Future[SessionRecord]]:
    """s0's change in flight at the gate, then the other seven waiting for the next write."""
    futures = [pool.submit(registry.update, IDS[0], desired_running=True)]
    assert gated.entered.wait(30)
    futures += [pool.submit(registry.update, sid, desired_running=True) for sid in IDS[1:]]
    _wait_until_waiting(registry, len(IDS) - 1)
    return futures


def _wait_until_waiting(registry: Registry, changes: int) -> None:
    deadline = time.monotonic() + 30
    while registry.waiting() < changes:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_changes_that_arrive_during_a_write_share_the_next_one(tmp_path: Path) -> None:
    registry, gated = _registry(tmp_path)
    writes = registry.writes
    with ThreadPoolExecutor(len(IDS)) as pool:
        futures = _queue_behind_a_write(registry, gated, pool)
        time.sleep(0.1)
        assert not any(f.done() for f in futures)  # nobody returns before its change is durable
        assert not any(r.desired_running for r in registry.all())
        gated.gate.set()
        stored = [f.result(30) for f in futures]
    assert registry.writes - writes == 2  # s0's write, then one for the seven that waited
    assert all(r.desired_running for r in stored)
    assert all(r.desired_running for r in Registry(tmp_path).all())


def test_a_failed_shared_write_fails_every_change_it_held_and_keeps_none() -> None:
    with small_disk("256k") as disk:
        folder = disk.path / ".bridge"
        registry, gated = _registry(folder)
        before = (folder / "sessions.json").read_bytes()
        with ThreadPoolExecutor(len(IDS)) as pool:
            futures = _queue_behind_a_write(registry, gated, pool)
            disk.fill()
            gated.gate.set()
            for future in futures:
                with pytest.raises(StoreError, match="full"):
                    future.result(30)
        assert not any(r.desired_running for r in registry.all())
        assert (folder / "sessions.json").read_bytes() == before
        disk.free()
        registry.update(IDS[0], last_reason="after")  # the next write carries none of them along
        again = Registry(folder)
        assert not any(r.desired_running for r in again.all()) and again.get(IDS[0]).last_reason == "after"


def test_an_update_of_an_unknown_session_fails_alone_in_a_shared_write(tmp_path: Path) -> None:
    registry, gated = _registry(tmp_path)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(registry.update, IDS[0], desired_running=True)
        assert gated.entered.wait(30)
        unknown = pool.submit(registry.update, "nobody", desired_running=True)
        known = pool.submit(registry.update, IDS[1], desired_running=True)
        _wait_until_waiting(registry, 2)
        gated.gate.set()
        with pytest.raises(SessionNotFound):
            unknown.result(30)
        assert first.result(30).desired_running and known.result(30).desired_running
    assert Registry(tmp_path).get(IDS[1]).desired_running


def test_a_change_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.put(SessionRecord(id="a", desired_running=True))
    writes = registry.writes
    registry.update("a", desired_running=True)
    registry.update("a", last_state=SessionState.STOPPED.value, last_reason="")
    assert registry.writes == writes


def test_a_state_a_session_passes_through_waits_for_the_next_write(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.put(SessionRecord(id="a", last_state=SessionState.OPEN.value))
    writes = registry.writes
    for passing in (SessionState.STARTING, SessionState.CONNECTING):
        assert registry.update("a", last_state=passing.value, last_reason="start").last_state == passing.value
        assert registry.get("a").last_state == passing.value  # in memory at once
        assert Registry(tmp_path).get("a").last_state == SessionState.OPEN.value  # not on disk yet
    assert registry.writes == writes
    registry.update("a", last_state=SessionState.OPEN.value, last_reason="open")
    assert registry.writes == writes + 1
    for settled in (SessionState.RECONNECTING, SessionState.LOGGED_OUT):
        registry.update("a", last_state=settled.value, last_reason="x")
        assert Registry(tmp_path).get("a").last_state == settled.value  # written at once
    assert registry.writes == writes + 3
    # A change of anything else along with a passing state is written at once.
    registry.update("a", last_state=SessionState.STARTING.value, desired_running=True)
    assert Registry(tmp_path).get("a").desired_running is True
