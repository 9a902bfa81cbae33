"""Messaging acceptance tests: real Baileys talks to simulated contacts with their own Signal identity."""

from __future__ import annotations

from pathlib import Path

from tests.simulator.client import SimulatorClient
from tests.simulator.driver import baileys, pair_by_qr

DELIVERY_ACK = 3  # proto.WebMessageInfo.Status.DELIVERY_ACK


def pre_key_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("pre-key-*.json")}


async def test_text_to_contact_is_decrypted_by_contact_and_acked(simulator: SimulatorClient, tmp_path: Path) -> None:
    me, contact = "15550200001", "15550209001"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        text = "hello from baileys, ünïcode ✓"
        await driver.command("send", to=f"{contact}@s.whatsapp.net", text=text)
        sent = await driver.wait_for(lambda e: e.get("ev") in ("sent", "error"))
        assert sent["ev"] == "sent", sent
        received = await simulator.wait_inbox(contact, lambda m: m.id == sent["id"])
        assert received.text == text
        assert received.from_ == f"{me}@s.whatsapp.net"
        ack = await driver.wait_for(lambda e: e.get("ev") == "server_ack" and e.get("id") == sent["id"])
        assert not ack.get("error")
        await driver.wait_for(
            lambda e: e.get("ev") == "message_update" and e.get("id") == sent["id"] and e.get("status") == DELIVERY_ACK
        )


async def test_contact_text_arrives_in_upsert_and_consumes_one_pre_key(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, contact = "15550200002", "15550209002"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        # the phone's history-sync notification (a pkmsg from device 0) takes a pre-key first
        await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("from") == f"{me}@s.whatsapp.net")
        mine = next(d for d in await simulator.devices() if d.phone == me)
        assert mine.pre_keys > 0
        before = pre_key_files(tmp_path)
        assert before, "useMultiFileAuthState holds the uploaded pre-keys"
        sent = await simulator.send_from_contact(contact, me, "hi from a contact")
        assert sent.devices == 1
        got = await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent.id)
        assert got["text"] == "hi from a contact"
        assert got["from"] == f"{contact}@s.whatsapp.net"
        assert got["fromMe"] is False
        # a second message rides the same Signal session (no new pre-key)
        second = await simulator.send_from_contact(contact, me, "second")
        got2 = await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == second.id)
        assert got2["text"] == "second"
    consumed = before - pre_key_files(tmp_path)
    assert len(consumed) == 1, f"exactly one pre-key file deleted, got {consumed}"


async def test_reply_after_contact_message_reaches_the_contact(simulator: SimulatorClient, tmp_path: Path) -> None:
    """After a pkmsg from the contact, Baileys' own send learns the contact's lid (usync) and
    re-keys; the contact must still decrypt the reply."""
    me, contact = "15550200003", "15550209003"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        first = await simulator.send_from_contact(contact, me, "ping")
        await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == first.id)
        for text in ("pong 1", "pong 2"):
            mark = len(driver.events)
            await driver.command("send", to=f"{contact}@s.whatsapp.net", text=text)
            sent = await driver.wait_for(lambda e: e.get("ev") == "sent", after=mark)
            sent_id = str(sent["id"])
            got = await simulator.wait_inbox(contact, lambda m: m.id == sent_id)  # noqa: B023 - awaited in-loop
            assert got.text == text
        back = await simulator.send_from_contact(contact, me, "after the reply")
        got_back = await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == back.id)
        assert got_back["text"] == "after the reply"


async def test_message_to_offline_device_is_delivered_at_next_login(simulator: SimulatorClient, tmp_path: Path) -> None:
    me, contact = "15550200004", "15550209004"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
    sent = await simulator.send_from_contact(contact, me, "while you were away")
    assert sent.queued == 1
    async with baileys(simulator, tmp_path) as again:
        got = await again.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent.id)
        assert got["text"] == "while you were away"
    device = next(d for d in await simulator.devices() if d.phone == me)
    assert device.offline_queue == 0


async def test_two_sessions_message_each_other(simulator: SimulatorClient, tmp_path: Path) -> None:
    """Two tenants (two accounts, two real Baileys companions): the simulator routes the companion's
    ciphertext to the other companion and the recipient's phone."""
    alice, bob = "15550200005", "15550200006"
    async with baileys(simulator, tmp_path / "a") as a, baileys(simulator, tmp_path / "b") as b:
        await pair_by_qr(simulator, a, alice)
        await pair_by_qr(simulator, b, bob)
        await a.command("send", to=f"{bob}@s.whatsapp.net", text="hi bob")
        sent = await a.wait_for(lambda e: e.get("ev") == "sent")
        got = await b.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent["id"])
        assert got["text"] == "hi bob"
        assert got["from"] == f"{alice}@s.whatsapp.net"
        assert got["fromMe"] is False
