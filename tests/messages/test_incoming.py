"""The normaliser on real Baileys JSON: tests/messages/baileys_json/ holds the messages.upsert
WAMessages that real Baileys 7.0.0-rc14 produced against the simulator in test_e2e_messages.py
(regenerate with `BRIDGE_CAPTURE_DIR=tests/messages/baileys_json pytest tests/messages/test_e2e_messages.py`).
Nothing here is hand-written JSON; where a test needs a variant it derives it from a capture."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.messages.addresses import LidBook
from bridge.messages.incoming import normalise, unwrap
from bridge.messages.model import MessageKind as K
from bridge.messages.model import MessageStatus

CAPTURED = [json.loads(p.read_text()) for p in sorted((Path(__file__).parent / "baileys_json").glob("*.json"))]
ME = "15550000000:3@s.whatsapp.net"


def content(wa: dict[str, Any]) -> dict[str, Any]:
    return unwrap(wa.get("message")) or {}


def captured(pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    found = [wa for wa in CAPTURED if pred(wa)]
    assert found, "no captured message matches; regenerate tests/messages/baileys_json"
    return copy.deepcopy(found[0])


def field_is(name: str, *, from_me: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda wa: name in content(wa) and bool(wa["key"].get("fromMe")) is from_me


def incoming(name: str) -> dict[str, Any]:
    return captured(lambda wa: field_is(name, from_me=False)(wa) and wa["key"]["remoteJid"].endswith("@s.whatsapp.net"))


def test_every_kind_a_tenant_can_meet_is_in_the_capture_and_normalises() -> None:
    kinds = set()
    for wa in CAPTURED:
        message = normalise("s", wa, me=ME, lids=LidBook())
        if message is not None:
            kinds.add(message.kind)
            assert message.id == wa["key"]["id"] and message.timestamp > 1_600_000_000
    assert kinds >= {K.TEXT, K.REACTION, K.EDIT, K.REVOKE, K.LOCATION, K.CONTACT, K.POLL, K.POLL_VOTE}


def test_housekeeping_is_not_a_message() -> None:
    history = captured(lambda wa: content(wa).get("protocolMessage", {}).get("type") == "HISTORY_SYNC_NOTIFICATION")
    assert normalise("s", history, me=ME, lids=LidBook()) is None


def test_a_text_from_a_contact_names_chat_sender_and_phone() -> None:
    wa = incoming("conversation")
    phone = wa["key"]["remoteJid"].split("@")[0]
    m = normalise("s", wa, me=ME, lids=LidBook())
    assert m is not None
    assert (m.kind, m.text, m.chat, m.sender, m.sender_phone) == (K.TEXT, wa["message"]["conversation"],
                                                                  wa["key"]["remoteJid"], wa["key"]["remoteJid"], phone)
    assert m.from_me is False and m.status is MessageStatus.DELIVERED
    assert m.sender_lid == wa["key"]["remoteJidAlt"], "WhatsApp's LID of the contact is kept beside the phone"


def test_a_lid_addressed_message_is_named_by_the_phone_number_in_remote_jid_alt() -> None:
    wa = captured(lambda wa: wa["key"]["remoteJid"].endswith("@lid") and not wa["key"].get("fromMe"))
    lids = LidBook()
    m = normalise("s", wa, me=ME, lids=lids)
    assert m is not None
    pn = wa["key"]["remoteJidAlt"]
    assert (m.chat, m.sender, m.sender_phone, m.sender_lid) == (pn, pn, pn.split("@")[0], wa["key"]["remoteJid"])
    later = copy.deepcopy(wa)
    del later["key"]["remoteJidAlt"]
    again = normalise("s", later, me=ME, lids=lids)
    assert again is not None and again.sender_phone == pn.split("@")[0], "the session's LID book remembers the pair"
    unknown = normalise("s", later, me=ME, lids=LidBook())
    assert unknown is not None and (unknown.chat, unknown.sender_phone) == (wa["key"]["remoteJid"], None)


def test_reply_reaction_edit_revoke_point_at_their_message() -> None:
    reply = normalise("s", incoming("extendedTextMessage"), me=ME, lids=LidBook())
    assert reply is not None and reply.quoted and reply.kind is K.TEXT
    wa = incoming("reactionMessage")
    reaction = normalise("s", wa, me=ME, lids=LidBook())
    assert reaction is not None and reaction.reaction is not None
    assert (reaction.reaction.message_id, reaction.reaction.emoji) == (wa["message"]["reactionMessage"]["key"]["id"],
                                                                       wa["message"]["reactionMessage"]["text"])
    for kind, name in ((K.EDIT, "MESSAGE_EDIT"), (K.REVOKE, "REVOKE")):
        wa = captured(lambda wa, name=name: content(wa).get("protocolMessage", {}).get("type") == name
                      and not wa["key"].get("fromMe"))
        m = normalise("s", wa, me=ME, lids=LidBook())
        target = wa["message"]["protocolMessage"]["key"]["id"]
        assert m is not None and m.kind is kind
        assert (m.edit.message_id if m.edit else m.revoke.message_id if m.revoke else None) == target


def test_location_contact_poll_and_vote() -> None:
    loc = normalise("s", incoming("locationMessage"), me=ME, lids=LidBook())
    assert loc is not None and loc.location is not None and -90 <= loc.location.lat <= 90
    card = normalise("s", incoming("contactMessage"), me=ME, lids=LidBook())
    assert card is not None and card.contacts and card.contacts[0].vcard.startswith("BEGIN:VCARD")
    poll = normalise("s", captured(lambda wa: "pollCreationMessageV3" in content(wa)), me=ME, lids=LidBook())
    assert poll is not None and poll.poll is not None and len(poll.poll.options) >= 2
    vote_wa = captured(field_is("pollUpdateMessage", from_me=False))
    vote = normalise("s", vote_wa, me=ME, lids=LidBook())
    assert vote is not None and vote.poll_vote is not None
    assert vote.poll_vote.poll_id == vote_wa["message"]["pollUpdateMessage"]["pollCreationMessageKey"]["id"]


def test_a_message_this_session_sent_is_from_me_with_baileys_status_and_a_string_timestamp() -> None:
    wa = captured(field_is("extendedTextMessage", from_me=True))
    assert isinstance(wa["messageTimestamp"], str), "proto JSON writes 64-bit numbers as strings"
    m = normalise("s", wa, me=ME, lids=LidBook())
    assert m is not None and m.from_me and m.sender == "15550000000@s.whatsapp.net"
    assert m.timestamp == int(wa["messageTimestamp"]) and m.status is MessageStatus.PENDING


@pytest.mark.parametrize("wrapper", ["ephemeralMessage", "viewOnceMessageV2", "documentWithCaptionMessage"])
def test_wrapped_content_is_unwrapped(wrapper: str) -> None:
    wa = incoming("conversation")
    wa["message"] = {wrapper: {"message": wa["message"]}}
    m = normalise("s", wa, me=ME, lids=LidBook())
    assert m is not None and m.kind is K.TEXT and m.text


def test_content_the_bridge_does_not_model_is_unsupported_with_its_type_not_silence() -> None:
    wa = incoming("conversation")
    wa["message"] = {"eventMessage": {"name": "party"}}
    m = normalise("s", wa, me=ME, lids=LidBook())
    assert m is not None and (m.kind, m.raw_type) == (K.UNSUPPORTED, "eventMessage")
