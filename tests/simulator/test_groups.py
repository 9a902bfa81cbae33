"""Groups against real Baileys (useMultiFileAuthState): w:g2 queries and w:gp2 notifications, and
group messages both ways with sender keys (skmsg fan-out, libsignal's group cipher)."""

from __future__ import annotations

from pathlib import Path

from tests.simulator.client import SimulatorClient
from tests.simulator.driver import Event, baileys, failure, pair_by_qr, received, run


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


async def test_session_group_messages_reach_every_member_contact_and_replies_come_back(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, alice, bob = "15550500001", "15550509001", "15550509002"
    for phone in (alice, bob):
        await simulator.create_contact(phone)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        created = (await run(driver, "group_create", subject="Support", participants=[jid(alice), jid(bob)]))["group"]
        group = created["id"]
        assert group.endswith("@g.us")
        assert {p["id"]: p["admin"] for p in created["participants"]} == {
            jid(me): "superadmin", jid(alice): None, jid(bob): None}
        assert (await simulator.group(group)).subject == "Support"

        for text in ("hello group", "second, same sender key"):
            sent = await run(driver, "send", to=group, text=text)
            for phone in (alice, bob):
                got = await simulator.wait_inbox(phone, lambda m, i=sent["id"]: m.id == i)
                assert (got.kind, got.text, got.chat, got.from_) == ("text", text, group, jid(me))
            assert [m.type for m in await simulator.inbox(alice)] == ["skmsg"] * (1 if text == "hello group" else 2)

        receipt = await driver.wait_for(lambda e: e.get("ev") == "message_receipt" and e.get("id") == sent["id"])
        assert receipt["remoteJid"] == group

        reply = await simulator.send_to_group(alice, group, text="a reply in the group", quoted=sent["id"])
        got = await received(driver, reply.id)
        assert (got["from"], got["participant"], got["text"]) == (group, jid(alice), "a reply in the group")
        context = got["message"]["extendedTextMessage"]["contextInfo"]
        assert (context["stanzaId"], context["participant"]) == (sent["id"], jid(me))
        again = await simulator.send_to_group(bob, group, text="bob too")
        assert (await received(driver, again.id))["participant"] == jid(bob)


async def test_group_admin_actions_answer_per_participant_and_notify_members(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, alice, carol, stranger, shy = "15550500002", "15550509003", "15550509004", "15550509999", "15550509006"
    for phone in (alice, carol):
        await simulator.create_contact(phone)
    await simulator.create_contact(shy, group_add="nobody")
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        group = (await run(driver, "group_create", subject="Orders", participants=[jid(alice)]))["group"]["id"]

        added = await run(driver, "group_participants", jid=group, action="add",
                          participants=[jid(carol), jid(alice), jid(stranger), jid(shy)])
        assert {r["jid"]: r["status"] for r in added["results"]} == {
            jid(carol): "200", jid(alice): "409", jid(stranger): "404", jid(shy): "403"}
        event = await driver.wait_for(lambda e: e.get("ev") == "participants_update" and e.get("action") == "add")
        assert [p["id"] for p in event["participants"]] == [jid(carol)]

        await run(driver, "group_participants", jid=group, action="promote", participants=[jid(alice)])
        await driver.wait_for(lambda e: e.get("ev") == "participants_update" and e.get("action") == "promote")
        removed = await simulator.change_group_participants(alice, group, "remove", [carol])
        assert [(r.jid, r.status) for r in removed] == [(jid(carol), "200")]
        gone: Event = await driver.wait_for(
            lambda e: e.get("ev") == "participants_update" and e.get("action") == "remove"
        )
        assert gone["author"] == jid(alice)

        await run(driver, "group_subject", jid=group, subject="Orders (EU)")
        update = await driver.wait_for(lambda e: e.get("ev") == "group_update" and e.get("subject") == "Orders (EU)")
        assert update["id"] == group
        await run(driver, "group_setting", jid=group, setting="announcement")
        await driver.wait_for(lambda e: e.get("ev") == "group_update" and e.get("announce") is True)
        metadata = (await run(driver, "group_metadata", jid=group))["group"]
        assert (metadata["subject"], metadata["announce"], len(metadata["participants"])) == ("Orders (EU)", True, 2)

        await run(driver, "group_participants", jid=group, action="demote", participants=[jid(me)])
        refused = await failure(driver, "group_participants", jid=group, action="add", participants=[jid(carol)])
        assert "not-authorized" in refused["message"]


async def test_contact_made_group_reaches_the_session_and_a_second_session(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    one, two, alice = "15550500003", "15550500004", "15550509005"
    await simulator.create_contact(alice)
    async with baileys(simulator, tmp_path / "one") as first, baileys(simulator, tmp_path / "two") as second:
        await pair_by_qr(simulator, first, one)
        await pair_by_qr(simulator, second, two)
        group = await simulator.create_group(alice, "Family", [one, two])
        for driver in (first, second):
            upsert = await driver.wait_for(lambda e: e.get("ev") == "group_upsert" and e.get("id") == group.id)
            assert upsert["subject"] == "Family"
        hello = await simulator.send_to_group(alice, group.id, text="hi both")
        assert hello.devices == 2
        for driver in (first, second):
            got = await received(driver, hello.id)
            assert (got["from"], got["participant"], got["text"]) == (group.id, jid(alice), "hi both")
        sent = await run(first, "send", to=group.id, text="from session one")
        got = await received(second, str(sent["id"]))
        assert (got["participant"], got["text"]) == (jid(one), "from session one")
        heard = await simulator.wait_inbox(alice, lambda m: m.id == sent["id"])
        assert heard.chat == group.id
        await run(second, "group_leave", jid=group.id)
        left = await first.wait_for(lambda e: e.get("ev") == "participants_update" and e.get("action") == "remove")
        assert [p["id"] for p in left["participants"]] == [jid(two)]
        assert {p.jid for p in (await simulator.group(group.id)).participants} == {jid(alice), jid(one)}
