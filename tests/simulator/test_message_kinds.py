"""Every message kind, both ways, between real Baileys (useMultiFileAuthState) and simulated contacts:
what a contact sends arrives in Baileys' messages.upsert as that proto kind, and what Baileys sends
is decrypted by the contact and described as that kind; receipts drive Baileys' message status."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.simulator.client import ContactCard, InboxMessage, SimulatorClient, SimulatorError
from tests.simulator.driver import Event, baileys, pair_by_qr, received, run

DELIVERY_ACK, READ, PLAYED = 3, 4, 5  # proto.WebMessageInfo.Status

def text_of(message: dict[str, Any]) -> str | None:
    """The text of a proto.Message as JSON (plain conversation or extended text)."""
    text = message.get("conversation") or message.get("extendedTextMessage", {}).get("text")
    return str(text) if text is not None else None


def is_status(event: Event, message_id: str, status: int) -> bool:
    """A Baileys messages.update event that moved `message_id` to `status`."""
    return event.get("ev") == "message_update" and event.get("id") == message_id and event.get("status") == status


def status_of(message_id: str, status: int) -> Callable[[Event], bool]:
    return lambda event: is_status(event, message_id, status)


def inbox_id(message_id: str) -> Callable[[InboxMessage], bool]:
    return lambda message: message.id == message_id


VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Jane Roe\nTEL;type=CELL;waid=15557654321:+1 555 765 4321\nEND:VCARD"


async def test_each_kind_a_contact_sends_arrives_in_baileys_as_that_kind(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, contact = "15550300001", "15550309001"
    await simulator.create_contact(contact, push_name="Alice")
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        mine = await run(driver, "send", to=f"{contact}@s.whatsapp.net", text="from the session")
        await simulator.wait_inbox(contact, lambda m: m.id == mine["id"])

        first = await simulator.send_from_contact(contact, me, "first")
        got = await received(driver, first.id)
        assert (got["contentType"], got["text"], got["pushName"]) == ("conversation", "first", "Alice")
        assert got["from"] == f"{contact}@s.whatsapp.net"

        reply = await simulator.send_from_contact(contact, me, "a reply", quoted=mine["id"])
        quoted = (await received(driver, reply.id))["message"]["extendedTextMessage"]
        assert quoted["text"] == "a reply"
        assert quoted["contextInfo"]["stanzaId"] == mine["id"]
        assert quoted["contextInfo"]["participant"] == f"{me}@s.whatsapp.net"
        assert text_of(quoted["contextInfo"]["quotedMessage"]) == "from the session"

        reaction = await simulator.send_reaction(contact, me, mine["id"], "👍")
        react = (await received(driver, reaction.id))["message"]["reactionMessage"]
        assert (react["text"], react["key"]["id"], react["key"]["fromMe"]) == ("👍", mine["id"], True)

        edit = await simulator.send_edit(contact, me, first.id, "first, edited")
        edited = (await received(driver, edit.id))["message"]["protocolMessage"]
        assert (edited["type"], edited["key"]["id"]) == ("MESSAGE_EDIT", first.id)
        assert edited["editedMessage"]["conversation"] == "first, edited"

        revoke = await simulator.send_revoke(contact, me, first.id)
        revoked = (await received(driver, revoke.id))["message"]["protocolMessage"]
        assert (revoked["type"], revoked["key"]["id"]) == ("REVOKE", first.id)

        loc = await simulator.send_location(contact, me, 52.52, 13.405, name="Berlin", address="Pariser Platz")
        location = (await received(driver, loc.id))["message"]["locationMessage"]
        assert (location["degreesLatitude"], location["degreesLongitude"]) == (52.52, 13.405)
        assert (location["name"], location["address"]) == ("Berlin", "Pariser Platz")

        card = await simulator.send_contacts(contact, me, [ContactCard(display_name="Jane Roe", vcard=VCARD)])
        shared = (await received(driver, card.id))["message"]["contactMessage"]
        assert shared == {"displayName": "Jane Roe", "vcard": VCARD}

        poll = await simulator.send_poll(contact, me, "Lunch?", ["pizza", "sushi", "salad"], selectable_count=2)
        created = (await received(driver, poll.id))["message"]
        assert created["pollCreationMessage"]["name"] == "Lunch?"
        assert [o["optionName"] for o in created["pollCreationMessage"]["options"]] == ["pizza", "sushi", "salad"]
        assert len(base64.b64decode(created["messageContextInfo"]["messageSecret"])) == 32


async def test_contact_vote_on_a_session_poll_decrypts_with_baileys_decrypt_poll_vote(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    """The vote is encrypted the way WhatsApp does it: Baileys' own decryptPollVote and
    getAggregateVotesInPollMessage (in the driver) read the option names back."""
    me, contact = "15550300002", "15550309002"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        question = {"name": "Which day?", "values": ["mon", "tue", "wed"], "selectableCount": 2}
        poll = await run(driver, "send", to=f"{contact}@s.whatsapp.net", content={"poll": question})
        got = await simulator.wait_inbox(contact, lambda m: m.id == poll["id"])
        assert got.kind == "poll" and got.stanza_type == "poll"
        assert got.poll is not None and got.poll.options == ["mon", "tue", "wed"] and got.poll.selectable_count == 2
        vote = await simulator.send_poll_vote(contact, me, poll["id"], ["tue", "wed"])
        arrived = await received(driver, vote.id)
        assert arrived["contentType"] == "pollUpdateMessage"
        assert sorted(arrived["vote"]) == ["tue", "wed"]
        with pytest.raises(SimulatorError, match="unknown: fri"):
            await simulator.send_poll_vote(contact, me, poll["id"], ["fri"])


async def test_each_kind_baileys_sends_is_decrypted_by_the_contact_as_that_kind(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, contact = "15550300003", "15550309003"
    to = f"{contact}@s.whatsapp.net"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        theirs = await simulator.send_from_contact(contact, me, "hello session")
        await received(driver, theirs.id)

        async def sent_as(**args: Any) -> str:
            return str((await run(driver, "send", to=to, **args))["id"])

        async def decrypted(message_id: str) -> InboxMessage:
            return await simulator.wait_inbox(contact, lambda m: m.id == message_id)

        text = await decrypted(await sent_as(content={"text": "hi @you", "mentions": [to]}))
        assert (text.kind, text.text, text.mentions, text.stanza_type) == ("text", "hi @you", [to], "text")

        reply = await decrypted(await sent_as(content={"text": "answer"}, quoted=theirs.id))
        assert reply.kind == "text" and reply.quoted is not None and reply.quoted.id == theirs.id
        assert reply.quoted.participant == to

        reaction = await decrypted(await sent_as(content={"react": {"text": "❤️", "key_id": theirs.id}}))
        assert reaction.kind == "reaction" and reaction.stanza_type == "reaction"
        assert reaction.reaction is not None and (reaction.reaction.key_id, reaction.reaction.emoji) == (theirs.id, "❤️")

        original = await sent_as(content={"text": "typo"})
        edit = await decrypted(await sent_as(content={"text": "fixed", "edit": original}))
        assert (edit.kind, edit.edit_attr) == ("edit", "1")
        assert edit.edit is not None and (edit.edit.key_id, edit.edit.text) == (original, "fixed")

        revoke = await decrypted(await sent_as(content={"delete": original}))
        assert (revoke.kind, revoke.edit_attr) == ("revoke", "7")
        assert revoke.revoke is not None and revoke.revoke.key_id == original

        sydney = {"degreesLatitude": -33.8688, "degreesLongitude": 151.2093, "name": "Sydney", "address": "NSW"}
        loc = await decrypted(await sent_as(content={"location": sydney}))
        assert loc.kind == "location" and loc.location is not None
        assert (loc.location.lat, loc.location.long, loc.location.name) == (-33.8688, 151.2093, "Sydney")

        two = [{"displayName": "Jane", "vcard": VCARD}, {"displayName": "John", "vcard": VCARD.replace("Jane", "John")}]
        cards = await decrypted(await sent_as(content={"contacts": {"displayName": "two", "contacts": two}}))
        assert cards.kind == "contact" and cards.contacts is not None
        assert [c.display_name for c in cards.contacts] == ["Jane", "John"]

        yes_no = {"name": "Yes?", "values": ["yes", "no"], "selectableCount": 1}
        poll = await decrypted(await sent_as(content={"poll": yes_no}))
        assert (poll.kind, poll.raw_type) == ("poll", "pollCreationMessageV3")


async def test_contact_receipts_move_baileys_status_to_delivered_read_played(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    me, contact = "15550300004", "15550309004"
    await simulator.create_contact(contact)
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        sent = [str((await run(driver, "send", to=f"{contact}@s.whatsapp.net", text=f"m{i}"))["id"]) for i in range(3)]
        for message_id in sent:
            await simulator.wait_inbox(contact, inbox_id(message_id))
            await driver.wait_for(status_of(message_id, DELIVERY_ACK))
        done = await simulator.send_receipt(contact, me, sent[:2], "read")
        assert done.devices == 1 and done.ids == sent[:2]
        for message_id in sent[:2]:
            await driver.wait_for(status_of(message_id, READ))
        await simulator.send_receipt(contact, me, [sent[2]], "played")
        await driver.wait_for(lambda e: is_status(e, sent[2], PLAYED))
        with pytest.raises(SimulatorError, match="received no message"):
            await simulator.send_receipt(contact, me, ["3EB0NOTAMESSAGE"], "read")

        theirs = await simulator.send_from_contact(contact, me, "read me")
        await received(driver, theirs.id)
        await run(driver, "read", ids=[theirs.id])
        receipt = await simulator.wait_receipt(contact, lambda r: r.id == theirs.id and r.type == "read")
        assert receipt.from_.startswith(f"{me}:")


async def test_lid_addressed_contact_arrives_from_its_lid_with_the_phone_number_beside_it(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    """WhatsApp's LID chats: `from` is the contact's LID and only `sender_pn` names the number;
    Baileys reports it as remoteJidAlt, and a reply to the LID reaches the contact."""
    me, phone = "15550300005", "15550309005"
    contact = await simulator.create_contact(phone, addressing="lid")
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, me)
        sent = await simulator.send_from_contact(phone, me, "from my lid")
        got = await received(driver, sent.id)
        assert (got["from"], got["fromAlt"], got["addressingMode"]) == (contact.lid, contact.jid, "lid")
        answer = await run(driver, "send", to=contact.lid, text="back to your lid")
        back = await simulator.wait_inbox(phone, lambda m: m.id == answer["id"])
        assert (back.text, back.to) == ("back to your lid", contact.lid)
        assert back.from_lid is not None and back.from_lid.endswith("@lid")
        update = await driver.wait_for(lambda e: is_status(e, answer["id"], DELIVERY_ACK))
        assert update["remoteJid"] == contact.lid
