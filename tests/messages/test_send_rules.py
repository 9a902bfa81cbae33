"""What a tenant may send, checked before anything reaches Node: WhatsApp's limits on each kind,
recipients, one emoji per reaction, and status that only moves forward."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from bridge.messages.emoji import is_single_emoji
from bridge.messages.model import MessageStatus as S
from bridge.messages.recipients import InvalidRecipient, RecipientKind, parse_recipient
from bridge.messages.send_body import SendBody, SendPoll, SendText
from bridge.messages.status import advance, from_baileys


def body(**fields: Any) -> Any:
    return SendBody.model_validate_json(json.dumps(fields)).root


def refusal(**fields: Any) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        body(**fields)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors())


TO = "4915123456789"


def test_a_body_without_kind_is_a_text_so_the_first_api_keeps_working() -> None:
    sent = body(to=TO, text="hi")
    assert isinstance(sent, SendText) and sent.text == "hi" and sent.link_preview is True


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "event", "to": TO}, "unknown kind; use text, reaction"),
        ({"to": TO, "text": "x" * 65_537}, "at most 65536"),
        ({"to": TO, "text": " \n "}, "text is empty"),
        ({"kind": "poll", "to": TO, "name": "q", "options": ["a"]}, "2 to 12 options, not 1"),
        ({"kind": "poll", "to": TO, "name": "q", "options": [str(i) for i in range(13)]}, "not 13"),
        ({"kind": "poll", "to": TO, "name": "q", "options": ["a", "a"]}, "every option must be different"),
        ({"kind": "poll", "to": TO, "name": "q", "options": ["a", "b"], "selectable_count": 3}, "exceeds the 2"),
        ({"kind": "location", "to": TO, "lat": 90.5, "long": 0}, "less than or equal to 90"),
        ({"kind": "location", "to": TO, "lat": 0, "long": -181}, "greater than or equal to -180"),
        ({"kind": "contact", "to": TO, "contacts": [{"display_name": "A", "vcard": "FN:A"}]}, "BEGIN:VCARD"),
        ({"kind": "contact", "to": TO, "contacts": [{"display_name": "A",
                                                     "vcard": "BEGIN:VCARD\nVERSION:3.0\nEND:VCARD"}]}, "no FN"),
        ({"kind": "reaction", "message_id": "ABC", "emoji": "ok"}, "not one emoji"),
        ({"kind": "reaction", "message_id": "ABC", "emoji": "👍👍"}, "not one emoji"),
        ({"kind": "reaction", "message_id": "../x", "emoji": "👍"}, "message_id"),
        ({"kind": "edit", "message_id": "ABC", "text": ""}, "at least 1"),
        ({"to": TO, "text": "hi", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_each_limit_is_refused_with_a_message_naming_what_to_change(fields: dict[str, Any], says: str) -> None:
    assert says in refusal(**fields)


def test_valid_bodies_of_every_kind() -> None:
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Jane Roe\nTEL;waid=15557654321:+1 555 765 4321\nEND:VCARD"
    poll = body(kind="poll", to=TO, name="Lunch?", options=["pizza", "sushi"], selectable_count=0)
    assert isinstance(poll, SendPoll) and poll.selectable_count == 0
    for fields in (
        {"kind": "reaction", "message_id": "3EB0ABC", "emoji": ""},
        {"kind": "reaction", "message_id": "3EB0ABC", "emoji": "❤️"},
        {"kind": "edit", "message_id": "3EB0ABC", "text": "fixed"},
        {"kind": "revoke", "message_id": "3EB0ABC"},
        {"kind": "location", "to": TO, "lat": -90, "long": 180, "name": "Pole"},
        {"kind": "contact", "to": TO, "contacts": [{"display_name": "Jane Roe", "vcard": vcard}]},
        {"kind": "forward", "to": "120363012345678901@g.us", "message_id": "3EB0ABC"},
    ):
        assert body(**fields).kind == fields["kind"]


@pytest.mark.parametrize(
    ("value", "jid", "kind"),
    [
        ("4915123456789", "4915123456789@s.whatsapp.net", RecipientKind.USER),
        ("+4915123456789", "4915123456789@s.whatsapp.net", RecipientKind.USER),
        ("4915123456789@c.us", "4915123456789@s.whatsapp.net", RecipientKind.USER),
        ("4915123456789@s.whatsapp.net", "4915123456789@s.whatsapp.net", RecipientKind.USER),
        ("123456789012345@lid", "123456789012345@lid", RecipientKind.LID),
        ("120363012345678901@g.us", "120363012345678901@g.us", RecipientKind.GROUP),
        ("4915123456789-1600000000@g.us", "4915123456789-1600000000@g.us", RecipientKind.GROUP),
    ],
)
def test_recipients_in_every_accepted_form(value: str, jid: str, kind: RecipientKind) -> None:
    recipient = parse_recipient(value)
    assert (recipient.jid, recipient.kind) == (jid, kind)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "no recipient given"),
        ("0151 2345678", "not a phone number"),
        ("4915123456789:3@s.whatsapp.net", "names one device; send to the account (4915123456789@s.whatsapp.net)"),
        ("status@broadcast", "not supported"),
        ("abc@example.com", "not a JID the bridge sends to"),
    ],
)
def test_bad_recipients_are_400_invalid_recipient_saying_what_to_send(value: str, says: str) -> None:
    with pytest.raises(InvalidRecipient) as info:
        parse_recipient(value)
    assert says in info.value.message and info.value.code == "invalid_recipient"
    assert "4915123456789@s.whatsapp.net" in info.value.message


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "1️⃣", "🏳️‍🌈", "☺"])
def test_one_emoji_of_any_shape_is_one_emoji(emoji: str) -> None:
    assert is_single_emoji(emoji)


@pytest.mark.parametrize("text", ["", "a", "👍 ", "👍👎", "🇩", "🇩🇪🇫🇷", ":)", "\u200d👍", "👍\u200d"])
def test_text_two_emoji_or_a_broken_sequence_is_not_one_emoji(text: str) -> None:
    assert not is_single_emoji(text)


def test_status_moves_forward_only_filling_in_what_a_later_receipt_proves() -> None:
    assert advance(S.PENDING, S.SENT) == [(S.SENT, False)]
    assert advance(S.SENT, S.READ) == [(S.DELIVERED, True), (S.READ, False)]
    assert advance(S.PENDING, S.DELIVERED) == [(S.SENT, True), (S.DELIVERED, False)]
    assert advance(S.READ, S.DELIVERED) == [] and advance(S.READ, S.READ) == []
    assert advance(S.SENT, S.FAILED) == [(S.FAILED, False)]
    assert advance(S.DELIVERED, S.FAILED) == [], "a message the contact has cannot fail any more"
    assert advance(S.FAILED, S.READ) == []


def test_baileys_status_numbers_and_names() -> None:
    assert [from_baileys(n) for n in range(6)] == [S.FAILED, S.PENDING, S.SENT, S.DELIVERED, S.READ, S.PLAYED]
    assert from_baileys("DELIVERY_ACK") is S.DELIVERED and from_baileys("3") is S.DELIVERED
    assert from_baileys(9) is None and from_baileys("junk") is None and from_baileys(None) is None
