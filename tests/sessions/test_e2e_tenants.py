"""Many tenants at once: each linked, each sending; one tenant's runtime dying touches no other.

The default run uses 5 tenants; the slow variant uses 20 (`-m slow`). Both also run pooled
(several sessions per Node process), where a crash takes down the sessions sharing the process
but no other pool.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import psutil
import pytest

from bridge.events import Event, EventBus
from bridge.sessions.manager import SessionManager
from tests.sessions.conftest import MakeManager, fresh_phone
from tests.sessions.helpers import TIMEOUT, link, wait_event
from tests.simulator.client import InboxMessage, SimulatorClient


def _has_id(message_id: str) -> Callable[[InboxMessage], bool]:
    return lambda m: m.id == message_id


def _state_of(session: str) -> Callable[[Event], bool]:
    return lambda e: e.session == session and e.kind == "state"


async def _send_and_check(manager: SessionManager, simulator: SimulatorClient, ids: list[str], contact: str,
                          tag: str) -> None:
    sent = [m.id for m in await asyncio.gather(*(manager.send_text(sid, contact, f"{tag} from {sid}") for sid in ids))]
    assert all(sent) and len(set(sent)) == len(ids)
    for message_id in sent:
        await simulator.wait_inbox(contact, _has_id(message_id), TIMEOUT)


async def _tenants(make_manager: MakeManager, simulator: SimulatorClient, count: int, per_runtime: int) -> None:
    bus = EventBus(capacity=100_000)
    manager = make_manager(bus, sessions_per_runtime=per_runtime)
    ids = [f"tenant{i:02d}" for i in range(count)]
    started = time.monotonic()
    await asyncio.gather(*(link(manager, simulator, sid) for sid in ids))
    linked_in = time.monotonic() - started
    contact = fresh_phone()
    await simulator.create_contact(contact)
    await _send_and_check(manager, simulator, ids, contact, "first")

    rss = sum(psutil.Process(pid).memory_info().rss for pid in {manager.get(sid).pid for sid in ids} if pid)
    runtimes = {sid: manager.get(sid).runtime for sid in ids}
    pids = {sid: manager.get(sid).pid for sid in ids}
    assert len(set(runtimes.values())) == -(-count // per_runtime)
    victim = ids[0]
    sharing = [sid for sid in ids if runtimes[sid] == runtimes[victim]]
    others = [sid for sid in ids if sid not in sharing]
    seq = bus.last_seq
    victim_pid = pids[victim]
    assert victim_pid is not None
    os.kill(victim_pid, signal.SIGKILL)
    for sid in sharing:
        await wait_event(bus, seq, _state_of(sid))
    await asyncio.gather(*(manager.wait_for_state(sid, {"open"}, TIMEOUT) for sid in sharing))
    # the others never noticed: no state change, same process, still sending
    touched = {e.session for e in bus.since(seq) if e.kind == "state"}
    assert touched == set(sharing)
    assert all(manager.get(sid).pid == pids[sid] and manager.get(sid).state == "open" for sid in others)
    # The victims' own sends after their restart are specified in test_e2e_lifecycle.py (known
    # runtime stdout bug, see there); here the point is that everyone else goes on undisturbed.
    await _send_and_check(manager, simulator, others, contact, "second")
    print(f"\n{count} tenants, {per_runtime} per runtime: linked in {linked_in:.1f}s, "
          f"runtime RSS {rss / 2**20:.0f} MiB in all ({rss / 2**20 / count:.0f} MiB per tenant)")


@pytest.mark.parametrize("per_runtime", [1, 3])
async def test_five_tenants_each_linked_and_sending_one_crash_touches_no_other(
    make_manager: MakeManager, simulator: SimulatorClient, per_runtime: int
) -> None:
    await _tenants(make_manager, simulator, 5, per_runtime)


@pytest.mark.slow
@pytest.mark.parametrize("per_runtime", [1, 5])
async def test_twenty_tenants_each_linked_and_sending_one_crash_touches_no_other(
    make_manager: MakeManager, simulator: SimulatorClient, per_runtime: int
) -> None:
    await _tenants(make_manager, simulator, 20, per_runtime)
