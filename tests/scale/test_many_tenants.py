"""Many tenants on one bridge: starting many at once (a bridge restart) keeps at most
`BRIDGE_START_CONCURRENCY` between `start` and a settled state, and every one gets there; with
the default pooled runtimes, a runtime crash brings every tenant it hosted back open, without a
QR, with the same identity."""

from __future__ import annotations

import asyncio
import os
import signal

from bridge.events import EventBus
from bridge.sessions import state as st
from tests.sessions.conftest import MakeManager
from tests.sessions.helpers import TIMEOUT, link
from tests.simulator.client import SimulatorClient

TENANTS = 6
CONCURRENCY = 2


def _most_unsettled_at_once(events: list[tuple[str, st.SessionState]]) -> int:
    """Replay the state events in bus order: the largest number of sessions in a state outside
    `SETTLED` (starting, connecting) at the same moment."""
    current: dict[str, st.SessionState] = {}
    most = 0
    for session, state in events:
        current[session] = state
        most = max(most, sum(1 for s in current.values() if s not in st.SETTLED))
    return most


async def test_restart_with_many_wanted_sessions_starts_them_a_bounded_few_at_a_time(
    make_manager: MakeManager,
) -> None:
    ids = [f"ramp{i}" for i in range(TENANTS)]
    first = make_manager(sessions_per_runtime=TENANTS)
    for sid in ids:
        await first.create(sid)
        await first.start(sid)  # wanted running from now on: the next bridge starts it by itself
    await first.shutdown()

    bus = EventBus(capacity=10_000)
    second = make_manager(bus, sessions_per_runtime=TENANTS, start_concurrency=CONCURRENCY, start_ramp=0.5)
    seq = bus.last_seq
    started = await second.start_all()

    assert sorted(started) == ids
    # never linked, so each settles showing a QR
    for sid in ids:
        assert (await second.wait_for_state(sid, {"qr"}, TIMEOUT)).state == "qr"
    events = [(e.session, st.SessionState(e.data["state"])) for e in bus.since(seq) if e.kind == "state"]
    assert {sid for sid, state in events if state is st.SessionState.STARTING} == set(ids)
    assert _most_unsettled_at_once(events) == CONCURRENCY


async def test_a_pooled_runtime_crash_brings_its_tenants_back_open_with_the_same_identity_and_no_qr(
    make_manager: MakeManager, simulator: SimulatorClient,
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)  # the default BRIDGE_SESSIONS_PER_RUNTIME pools these three
    ids = ["pooled0", "pooled1", "pooled2"]
    for sid in ids:
        await link(manager, simulator, sid)
    before = {sid: manager.get(sid) for sid in ids}
    assert len({info.runtime for info in before.values()}) == 1
    pid = before[ids[0]].pid
    assert pid is not None
    seq = bus.last_seq

    os.kill(pid, signal.SIGKILL)
    not_open = set(st.SessionState) - {st.SessionState.OPEN}
    await asyncio.gather(*(manager.wait_for_state(sid, not_open, TIMEOUT) for sid in ids))
    after = {sid: await manager.wait_for_state(sid, {"open"}, TIMEOUT) for sid in ids}

    assert {sid: info.me for sid, info in after.items()} == {sid: info.me for sid, info in before.items()}
    assert all(info.pid not in (None, pid) and info.runtime == before[sid].runtime for sid, info in after.items())
    changes = [(e.session, st.SessionState(e.data["state"])) for e in bus.since(seq) if e.kind == "state"]
    assert {sid for sid, _ in changes} == set(ids)  # each went down and came back
    assert not {state for _, state in changes} & {st.SessionState.QR, st.SessionState.PAIRING}
