"""Storage faults under a running session, on a real tmpfs filled and freed: real Baileys, the
simulator, and its simulated contact that decrypts what it gets (so a reused message key shows)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from bridge.config import Settings
from bridge.events import EventBus
from bridge.monitor.incidents import IncidentLog
from bridge.sessions.manager import SessionManager
from bridge.store.snapshots import Snapshots
from tests.sessions.conftest import bridge_settings, fresh_phone
from tests.sessions.disk import SmallDisk, small_disk
from tests.sessions.helpers import TIMEOUT, link, settled
from tests.simulator.client import SimulatorClient


class Linked(NamedTuple):
    disk: SmallDisk
    bus: EventBus
    settings: Settings
    manager: SessionManager
    contact: str


@contextlib.asynccontextmanager
async def linked_on_a_small_disk(simulator: SimulatorClient, session: str) -> AsyncIterator[Linked]:
    """A session linked on a 48 MiB tmpfs that has sent one message to a new contact, its files
    settled; shut down (and the tmpfs unmounted) at the end."""
    with small_disk("48m") as disk:
        bus = EventBus(capacity=10_000)
        settings = bridge_settings(disk.path / "auth", simulator)
        manager = SessionManager(settings, bus, Snapshots(settings.auth_root))
        try:
            await link(manager, simulator, session)
            contact = fresh_phone()
            await simulator.create_contact(contact)
            before = await manager.send_text(session, contact, "before the disk fills")
            await simulator.wait_inbox(contact, lambda m: m.id == before.id, TIMEOUT)
            await settled(settings.auth_root / session)
            yield Linked(disk, bus, settings, manager, contact)
        finally:
            await manager.shutdown()


async def test_a_full_disk_during_a_send_suspends_the_session_says_sent_not_persisted_and_resumes_in_step(
    simulator: SimulatorClient,
) -> None:
    async with linked_on_a_small_disk(simulator, "full") as (disk, bus, settings, manager, contact):
        mark = bus.last_seq

        disk.fill()
        # a commit may still fit in the journal's last page (then it is stored): send until one is refused
        for attempt in range(5):
            during = await manager.send_text("full", contact, f"while the disk is full {attempt}")
            # The message left (the contact decrypts it), so the answer must not be "retry".
            await simulator.wait_inbox(contact, lambda m, wanted=during.id: m.id == wanted, TIMEOUT)
            if not during.persisted:
                break
        assert (during.persisted, during.server_ack) == (False, True)
        info = await manager.wait_for_state("full", {"suspended"}, TIMEOUT)
        assert info.reason == "storage_full" and info.pid is None and info.incident
        assert info.desired_running is True

        freed_at = time.monotonic()
        disk.free()
        info = await manager.wait_for_state("full", {"open"}, TIMEOUT)
        print(f"open again {time.monotonic() - freed_at:.1f} s after the disk was freed")
        assert info.incident is None
        # The key state of the message sent during the fault was written before the restart,
        # so the next message uses the next key and the contact decrypts it.
        after = await manager.send_text("full", contact, "after the disk was freed")
        assert after.persisted
        await simulator.wait_inbox(contact, lambda m: m.id == after.id, TIMEOUT)

        # One incident: one critical alert, and one notice that it is over once the session is open.
        alerts = [e for e in bus.since(mark) if e.kind == "alert"]
        assert [(a.data["alert"], a.data["severity"]) for a in alerts] == [
            ("storage_fault", "critical"), ("storage_fault", "info")]
        incident = bus_incident(bus, mark, "suspended")
        assert [a.data["incident"] for a in alerts] == [incident, incident] and alerts[1].data["resolved"]
        await asyncio.to_thread(manager.desk.flush)
        recorded = {i.id: i for i in IncidentLog(settings.bridge_dir).latest()}
        assert recorded[incident].resolved_at is not None  # its end reached the journal, space being back


async def test_a_full_disk_under_sends_in_flight_together_answers_each_sent_one_not_persisted_and_resumes_in_step(
    simulator: SimulatorClient,
) -> None:
    """A send's key commit is pipelined: several sends of the account may be out before the first
    refused commit is known. The sends whose commits were refused answer not persisted (a commit
    may still fit in the journal's last page and be stored: that one answers persisted); their
    commits are held in order and written once the disk has room, so the next message uses the
    next key (no retry needed)."""
    async with linked_on_a_small_disk(simulator, "burstfull") as (disk, _bus, _settings, manager, contact):
        disk.fill()
        results = await asyncio.gather(
            *(manager.send_text("burstfull", contact, f"burst {i}") for i in range(10)), return_exceptions=True)
        sent = [r for r in results if not isinstance(r, BaseException)]
        assert any(not r.persisted for r in sent), results
        for r in sent:
            if r.server_ack:
                await simulator.wait_inbox(contact, lambda m, wanted=r.id: m.id == wanted, TIMEOUT)
        await manager.wait_for_state("burstfull", {"suspended"}, TIMEOUT)

        disk.free()
        await manager.wait_for_state("burstfull", {"open"}, TIMEOUT)
        after = await manager.send_text("burstfull", contact, "after the disk was freed")
        assert after.persisted
        await simulator.wait_inbox(contact, lambda m: m.id == after.id, TIMEOUT)
        assert await simulator.decrypt_errors(contact) == []


def bus_incident(bus: EventBus, after: int, state: str) -> str:
    """The incident id the `state` event into `state` carried."""
    return next(str(e.data["incident"]) for e in bus.since(after) if e.kind == "state" and e.data["state"] == state)
