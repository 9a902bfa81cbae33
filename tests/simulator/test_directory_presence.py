"""Who is on WhatsApp, profiles and presence, against real Baileys (useMultiFileAuthState):
usync contact queries (onWhatsApp), profile pictures and status text (shown, absent, hidden),
presence subscriptions and chat states in both directions."""

from __future__ import annotations

from pathlib import Path

from tests.simulator.client import SimulatorClient
from tests.simulator.driver import baileys, failure, pair_by_qr, run


async def test_on_whatsapp_is_true_for_simulated_users_and_false_for_other_numbers(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, contact, stranger = "15550400001", "15550409001", "15550409999"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        answer = await run(driver, "on_whatsapp", numbers=[contact, f"+{stranger}", me])
        found = {r["jid"]: r["exists"] for r in answer["results"]}
        assert found == {f"{contact}@s.whatsapp.net": True, f"{me}@s.whatsapp.net": True}
    assert stranger not in {a.phone for a in await simulator.accounts()}, "asking must not create a user"


async def test_profile_picture_and_status_are_served_absent_or_refused(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, shown, plain, private = "15550400002", "15550409002", "15550409003", "15550409004"
    url = "https://pps.example.test/v/t61/abc.jpg?oh=1"
    await simulator.create_contact(shown, picture_url=url, status="Busy building bridges")
    await simulator.create_contact(plain)
    await simulator.create_contact(private, picture_url=url, picture_hidden=True, status="secret", status_hidden=True)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        assert (await run(driver, "profile_picture", jid=f"{shown}@s.whatsapp.net"))["url"] == url
        status = await run(driver, "status", jid=f"{shown}@s.whatsapp.net")
        assert status["results"] == [{"id": f"{shown}@s.whatsapp.net", "status": "Busy building bridges"}]

        missing = await failure(driver, "profile_picture", jid=f"{plain}@s.whatsapp.net")
        assert "item-not-found" in missing["message"]
        assert (await run(driver, "status", jid=f"{plain}@s.whatsapp.net"))["results"][0]["status"] is None

        hidden = await failure(driver, "profile_picture", jid=f"{private}@s.whatsapp.net")
        assert "not-authorized" in hidden["message"]
        assert (await run(driver, "status", jid=f"{private}@s.whatsapp.net"))["results"][0]["status"] == ""


async def test_presence_and_chat_states_flow_both_ways(simulator: SimulatorClient, tmp_path: Path) -> None:
    me, contact = "15550400003", "15550409005"
    jid = f"{contact}@s.whatsapp.net"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        await run(driver, "subscribe", to=jid)
        first = await driver.wait_for(lambda e: e.get("ev") == "presence" and e.get("id") == jid)
        assert first["presences"][jid]["lastKnownPresence"] == "unavailable"
        state = await simulator.presence_state(contact)
        assert len(state.subscribers) == 1 and state.subscribers[0].startswith(f"{me}:")

        for kind, seen in (("available", "available"), ("composing", "composing"), ("recording", "recording"),
                           ("paused", "available")):
            mark = len(driver.events)
            sent = await simulator.set_presence(contact, kind, to=me)  # type: ignore[arg-type]
            assert sent["sent"] == 1
            event = await driver.wait_for(lambda e: e.get("ev") == "presence" and e.get("id") == jid, after=mark)
            assert event["presences"][jid]["lastKnownPresence"] == seen, kind

        await driver.wait_for(lambda e: e.get("ev") == "me_name")  # the phone's notify names the account
        await run(driver, "presence", type="available")
        await run(driver, "presence", type="composing", to=jid)
        await run(driver, "presence", type="paused", to=jid)
        state = await simulator.wait_presence(contact, lambda s: len(s.chatstates) >= 2)
        assert [c.type for c in state.chatstates] == ["composing", "paused"]
        assert all(c.from_.startswith(f"{me}:") for c in state.chatstates)
        account = next(a for a in await simulator.accounts() if a.phone == me)
        assert account.presence == "available"

