"""Starting many tenants at once (a bridge restart): never more than `BRIDGE_START_CONCURRENCY`
sessions are between `start` and a settled state at the same time, and every one gets there."""

from __future__ import annotations

from bridge.events import EventBus
from bridge.sessions import state as st
from tests.sessions.conftest import MakeManager
from tests.sessions.helpers import TIMEOUT

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
