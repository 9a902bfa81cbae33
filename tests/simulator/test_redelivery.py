"""The simulator keeps a message until the device acknowledges it, as WhatsApp's server does.

Its own simulator (with `SIM_TRACE=1`): the assertions read the stanzas it logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulator.client import SimulatorClient, SimulatorProcess
from tests.simulator.driver import baileys, pair_by_qr


def _forget_sessions(folder: Path) -> int:
    """Delete every Signal session file under `folder`; returns how many."""
    lost = list(folder.rglob("session-*.json"))
    for path in lost:
        path.unlink()
    return len(lost)


@pytest.fixture(scope="module")
def traced() -> Iterator[SimulatorProcess]:
    proc = SimulatorProcess(env={"SIM_TRACE": "1"})
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def simulator(traced: SimulatorProcess) -> SimulatorClient:
    return traced.wait_ready()


async def test_a_message_the_device_never_acknowledged_comes_again_at_its_next_login(
    simulator: SimulatorClient, traced: SimulatorProcess, tmp_path: Path
) -> None:
    """Like WhatsApp's server, the simulator keeps a message until the device acknowledges it and
    delivers it again, same id, at the next login. This device did decrypt it the first time (its
    folder keeps the used message key), so Baileys drops the copy as already decrypted: a negative
    ack 487 with no retry receipt and no second upsert; the server then forgets it."""
    me, contact = "15550200006", "15550209006"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        await simulator.fault("deaf", phone=me)  # the server ignores the device's receipt and ack
        sent = await simulator.send_from_contact(contact, me, "never acknowledged")
        first = await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent.id)
        assert first["text"] == "never acknowledged"
    async with baileys(simulator, tmp_path) as again:
        later = await simulator.send_from_contact(contact, me, "after the redelivery")
        await again.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == later.id)
        log = traced.log_tail(4000)
        assert f'"id":"{sent.id}","to":"{contact}@s.whatsapp.net","class":"message","error":"487"' in log, log
        assert not [e for e in again.events if e.get("ev") == "message" and e.get("id") == sent.id]
    async with baileys(simulator, tmp_path) as third:
        last = await simulator.send_from_contact(contact, me, "third login")
        await third.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == last.id)
    assert (await simulator.contact(contact)).retries == 0
    deliveries = [line for line in traced.log_tail(4000).splitlines() if ">> message" in line and sent.id in line]
    assert len(deliveries) == 2, deliveries  # live, then once more at the next login (offline="1"), never again
    assert '"offline":"1"' in deliveries[1], deliveries


async def test_a_message_the_device_cannot_decrypt_is_sent_again_after_its_retry_receipts(
    simulator: SimulatorClient, traced: SimulatorProcess, tmp_path: Path
) -> None:
    """The device lost its Signal sessions (files deleted while it was away): the queued message fails
    to decrypt, Baileys sends a retry receipt (count 1, no keys: the contact re-encrypts on the same
    session, which fails again), then one with its key bundle (count 2): the contact starts a fresh
    session from that bundle and the message decrypts, same id, once."""
    me, contact = "15550200007", "15550209007"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        hello = await simulator.send_from_contact(contact, me, "hello")
        await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == hello.id)
    assert _forget_sessions(tmp_path)
    sent = await simulator.send_from_contact(contact, me, "after the sessions were lost")
    async with baileys(simulator, tmp_path) as again:
        got = await again.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent.id and "text" in e)
        assert got["text"] == "after the sessions were lost"
        later = await simulator.send_from_contact(contact, me, "and the next one")
        await again.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == later.id)
        decrypted = [e for e in again.events if e.get("ev") == "message" and e.get("id") == sent.id and "text" in e]
        assert len(decrypted) == 1, decrypted
    retries = [line for line in traced.log_tail(4000).splitlines() if "<< receipt" in line and sent.id in line]
    assert any('"type":"retry"' in line for line in retries), retries
    assert (await simulator.contact(contact)).retries >= 1
