"""Group rules without a process: what a request may name, and what Baileys' group events become."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.events import EventBus
from bridge.groups import events
from bridge.groups.join import invite_from
from bridge.groups.names import group_info
from bridge.groups.targets import InvalidParticipants, group_jid, participant_jids
from bridge.ipc import groups as ipc
from bridge.messages.addresses import LidBook
from bridge.messages.recipients import InvalidRecipient

ME = "15550000001@s.whatsapp.net"


def published(data: Any, me: str = ME, lids: LidBook | None = None) -> list[tuple[str, dict[str, Any]]]:
    bus = EventBus(100)
    events.publish(bus, "s1", data, me, lids or LidBook())
    return [(e.kind, e.data) for e in bus.since(0)]


def test_participants_are_people_named_once_within_a_groups_size() -> None:
    assert participant_jids(["+4915123456789", "4915123456780@s.whatsapp.net", "123456789012345@lid"]) == [
        "4915123456789@s.whatsapp.net", "4915123456780@s.whatsapp.net", "123456789012345@lid"]
    with pytest.raises(InvalidParticipants, match="at least one"):
        participant_jids([])
    with pytest.raises(InvalidParticipants, match="at most 1024"):
        participant_jids([f"4915{n:09d}" for n in range(1024)])
    with pytest.raises(InvalidParticipants, match=r"participants\[1\].*twice"):
        participant_jids(["4915123456789", "4915123456789@s.whatsapp.net"])
    with pytest.raises(InvalidParticipants, match="is a group"):
        participant_jids(["120363012345678901@g.us"])
    with pytest.raises(InvalidRecipient, match="one device"):
        participant_jids(["4915123456789:3@s.whatsapp.net"])


def test_a_group_is_named_by_its_jid_or_its_digits() -> None:
    assert group_jid("120363012345678901") == "120363012345678901@g.us"
    assert group_jid("120363012345678901@g.us") == "120363012345678901@g.us"
    for bad in ("4915123456789@s.whatsapp.net", "join", ""):
        with pytest.raises(InvalidRecipient, match="not a group JID"):
            group_jid(bad)


def test_an_invite_is_a_code_or_a_link() -> None:
    assert invite_from("https://chat.whatsapp.com/AbC123xyz_-0?lang=en") == "AbC123xyz_-0"
    assert invite_from(" AbC123xyz ") == "AbC123xyz"
    with pytest.raises(Exception, match="not an invite code"):
        invite_from("https://example.com/AbC123")


def test_metadata_names_members_by_phone_also_when_whatsapp_gives_lids() -> None:
    lids = LidBook()
    info = group_info({
        "id": "120363000000000001@g.us", "subject": "Team", "owner": "111@lid", "ownerPn": "15550000001@s.whatsapp.net",
        "creation": 1_700_000_000, "announce": True, "restrict": False, "size": 2,
        "participants": [{"id": "111@lid", "phoneNumber": "15550000001@s.whatsapp.net", "admin": "superadmin"},
                         {"id": "15550000002@s.whatsapp.net", "lid": "222@lid", "admin": None}],
    }, lids)
    assert info.owner == ME
    assert [(p.jid, p.phone, p.lid, p.role.value) for p in info.participants] == [
        (ME, "15550000001", "111@lid", "superadmin"),
        ("15550000002@s.whatsapp.net", "15550000002", "222@lid", "member")]
    assert lids.phone_jid("222@lid") == "15550000002@s.whatsapp.net"


def test_info_changes_name_the_changed_fields_and_the_author() -> None:
    data = ipc.GroupsUpdateData(updates=[
        {"id": "1203630001@g.us", "subject": "New", "author": "999@lid", "authorPn": "15550000009@s.whatsapp.net"},
        {"id": "1203630001@g.us", "desc": None},
        {"id": "1203630001@g.us", "announce": True, "restrict": False},
        {"id": "1203630001@g.us", "inviteCode": "x"},  # not modelled: no event
    ])
    got = published(data)
    assert [(k, d["changed"]) for k, d in got] == [
        ("group.update", ["subject"]), ("group.update", ["description"]), ("group.update", ["announce", "restrict"])]
    assert (got[0][1]["subject"], got[0][1]["author"], got[0][1]["author_phone"]) == (
        "New", "15550000009@s.whatsapp.net", "15550000009")
    assert got[1][1].get("description") is None


def test_participant_changes_say_who_did_it_and_when_the_account_itself_joined_or_left() -> None:
    me_added = ipc.GroupParticipantsData(id="1203630001@g.us", action="add", author="15550000009@s.whatsapp.net",
                                         participants=[ipc.ParticipantJson(id=ME)])
    assert [(k, d.get("action") or d.get("membership")) for k, d in published(me_added)] == [
        ("group.participants", "added"), ("group.update", "joined")]
    left = ipc.GroupParticipantsData(id="1203630001@g.us", action="remove", author="15550000002@s.whatsapp.net",
                                     participants=[ipc.ParticipantJson(id="15550000002@s.whatsapp.net")])
    [(kind, data)] = published(left)
    assert (kind, data["action"], data["includes_me"]) == ("group.participants", "left", False)
    removed_me = ipc.GroupParticipantsData(id="1203630001@g.us", action="remove", author="15550000009@s.whatsapp.net",
                                           participants=[ipc.ParticipantJson(id=ME)])
    assert [d.get("membership") for _, d in published(removed_me)] == [None, "removed"]
    promoted = ipc.GroupParticipantsData(id="1203630001@g.us", action="promote", author="15550000009@s.whatsapp.net",
                                         participants=[ipc.ParticipantJson(id="333@lid",
                                                                           phoneNumber="15550000003@s.whatsapp.net")])
    [(_, data)] = published(promoted)
    assert data["participants"] == [{"jid": "15550000003@s.whatsapp.net", "phone": "15550000003", "lid": "333@lid",
                                     "role": "member"}]


def test_a_new_group_is_joined_with_its_metadata() -> None:
    data = ipc.GroupsUpsertData(groups=[{"id": "1203630001@g.us", "subject": "Made", "author": ME,
                                         "participants": [{"id": ME, "admin": "superadmin"}]}])
    [(kind, got)] = published(data)
    assert (kind, got["membership"], got["metadata"]["subject"], got["changed"]) == (
        "group.update", "joined", "Made", ["membership"])


def test_the_account_is_found_among_members_only_by_its_own_jid_or_lid() -> None:
    from types import SimpleNamespace

    from bridge.groups.metadata import find

    ctx: Any = SimpleNamespace(lids=LidBook())
    info = group_info({"id": "1203630001@g.us", "participants": [{"id": "15550000002@s.whatsapp.net"}]}, ctx.lids)
    assert find(info, ME, ctx) is None
    assert find(info, "15550000002:4@s.whatsapp.net", ctx) == info.participants[0]
