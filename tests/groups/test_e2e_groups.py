"""Groups over HTTP against real sessions (real Node, real Baileys) and the WhatsApp simulator.

Specification: a session creates a group with contacts, every member contact decrypts what the
session sends there (sender keys), a contact's group message arrives with the group as `chat`
and the contact as `sender`; sends to a known group ask WhatsApp for its metadata at most once
(Node's cache); participant and info changes arrive as `group.participants` / `group.update`;
admin actions answer per participant; bad input and refused actions are 4xx naming the problem
and reach neither Node nor WhatsApp.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.events import Event
from tests.api.conftest import AUTH, Bridge, _bridge, make_settings
from tests.media import files
from tests.media.sim_media import decrypted, send_media_to_group, trust_file
from tests.messages.test_e2e_messages import TIMEOUT, event, message
from tests.simulator.client import SimulatorClient

_numbers = itertools.count(random.Random(os.getpid() + 18).randrange(10_000, 90_000) * 1000)


def fresh_phone() -> str:
    return f"1778{next(_numbers):08d}"


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


@pytest.fixture
async def bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                 ) -> AsyncIterator[Bridge]:
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             max_body_bytes=1 << 20)
    async for b in _bridge(settings, aiohttp_client):
        yield b


@pytest.fixture
async def media_bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                       ) -> AsyncIterator[Bridge]:
    ca = await trust_file(simulator, tmp_path)
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             media_trust_ca=str(ca), max_body_bytes=1 << 20)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def link(b: Bridge, simulator: SimulatorClient, session_id: str) -> str:
    phone = fresh_phone()
    await simulator.create_account(phone)
    await b.manager.create(session_id, "pairing_code", phone)
    code = await b.manager.request_pairing_code(session_id, phone)
    await simulator.enter_pairing_code(phone, code)
    await b.manager.wait_for_state(session_id, {"open"}, TIMEOUT)
    return phone


async def contacts(simulator: SimulatorClient, n: int, **options: Any) -> list[str]:
    phones = [fresh_phone() for _ in range(n)]
    for phone in phones:
        await simulator.create_contact(phone, **options)
    return phones


async def call(b: Bridge, method: str, path: str, status: int, body: Any = None) -> dict[str, Any]:
    response = await b.client.request(method, f"/api/v1/sessions/{path}", json=body, headers=AUTH)
    answer: dict[str, Any] = await response.json()
    assert response.status == status, answer
    return answer


async def sim_group(simulator: SimulatorClient, group: str) -> dict[str, Any]:
    """The simulator's raw view of a group (with its `metadata_queries` counter)."""
    async with aiohttp.ClientSession() as http, http.get(f"{simulator.control_url}/groups/{group}") as r:
        data: dict[str, Any] = await r.json()
        return data


def kind(name: str, group: str, **fields: Any) -> Callable[[Event], bool]:
    return lambda e: e.kind == name and e.data["group"] == group and all(e.data.get(k) == v for k, v in fields.items())


async def test_a_created_group_carries_messages_both_ways_and_sends_use_cached_metadata(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "creator")
    alice, bob, carol = await contacts(simulator, 3)

    created = await call(bridge, "POST", "creator/groups", 201,
                         {"subject": "Support", "participants": [alice, jid(bob), f"+{carol}"]})
    group = created["id"]
    assert group.endswith("@g.us") and created["subject"] == "Support"
    roles = {p["phone"]: p["role"] for p in created["participants"]}
    assert roles == {me: "superadmin", alice: "member", bob: "member", carol: "member"}
    listed = await call(bridge, "GET", "creator/groups", 200)
    assert [g["id"] for g in listed["groups"]] == [group]
    meta = await call(bridge, "GET", f"creator/groups/{group}", 200)
    assert (meta["subject"], meta["size"], meta["announce"], meta["restrict"]) == ("Support", 4, False, False)
    queries = (await sim_group(simulator, group))["metadata_queries"]
    assert queries >= 1  # the GET above asked the server

    sends = [{"to": group, "text": "hello group"},
             {"to": group, "kind": "location", "lat": 52.52, "long": 13.405, "name": "Office"},
             {"to": group, "kind": "poll", "name": "Lunch?", "options": ["yes", "no"]},
             {"to": group, "text": "fourth, same sender key"}]
    for body in sends:
        sent = await call(bridge, "POST", "creator/messages", 201, body)
        for phone in (alice, bob, carol):
            got = await simulator.wait_inbox(phone, lambda m, i=sent["id"]: m.id == i, TIMEOUT)
            assert (got.chat, got.from_) == (group, jid(me))
            assert got.kind == body.get("kind", "text")
    assert (await sim_group(simulator, group))["metadata_queries"] == queries, \
        "sending to a known group must not ask WhatsApp for its metadata again"

    reply = await simulator.send_to_group(alice, group, text="a reply in the group", quoted=sent["id"])
    got = (await event(bridge, 0, message(reply.id))).data
    assert (got["chat"], got["sender"], got["sender_phone"], got["text"], got["quoted"]) == (
        group, jid(alice), alice, "a reply in the group", sent["id"])
    assert got["from_me"] is False


async def test_admin_actions_answer_per_participant_and_every_change_is_an_event(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "admin")
    alice, carol = await contacts(simulator, 2)
    [shy] = await contacts(simulator, 1, group_add="nobody")
    stranger = fresh_phone()  # no WhatsApp account
    group = (await call(bridge, "POST", "admin/groups", 201, {"subject": "Orders", "participants": [alice]}))["id"]
    joined = await event(bridge, 0, kind("group.update", group, membership="joined"))
    assert joined.data["metadata"]["subject"] == "Orders"

    added = await call(bridge, "POST", f"admin/groups/{group}/participants", 200,
                       {"action": "add", "participants": [carol, alice, stranger, shy]})
    assert {r["phone"]: r["result"] for r in added["results"]} == {
        carol: "added", alice: "already_in_group", stranger: "not_on_whatsapp", shy: "privacy_blocked"}
    change = await event(bridge, 0, kind("group.participants", group, action="added"))
    assert ([p["phone"] for p in change.data["participants"]], change.data["author_phone"]) == ([carol], me)

    await call(bridge, "POST", f"admin/groups/{group}/participants", 200,
               {"action": "promote", "participants": [alice]})
    promoted = await event(bridge, 0, kind("group.participants", group, action="promoted"))
    assert [p["phone"] for p in promoted.data["participants"]] == [alice]
    removed = await simulator.change_group_participants(alice, group, "remove", [carol])
    assert [r.status for r in removed] == ["200"]
    gone = await event(bridge, 0, kind("group.participants", group, action="removed"))
    assert (gone.data["author_phone"], [p["phone"] for p in gone.data["participants"]]) == (alice, [carol])

    updated = await call(bridge, "PATCH", f"admin/groups/{group}", 200,
                         {"subject": "Orders (EU)", "description": "EU orders only", "announce": True,
                          "restrict": True})
    assert (updated["subject"], updated["description"], updated["announce"], updated["restrict"]) == (
        "Orders (EU)", "EU orders only", True, True)
    for field, value in (("subject", "Orders (EU)"), ("description", "EU orders only"), ("announce", True),
                         ("restrict", True)):
        e = await event(bridge, 0, lambda e, f=field: kind("group.update", group)(e) and f in e.data["changed"])
        assert (e.data[field], e.data["author_phone"]) == (value, me)

    invite = await call(bridge, "GET", f"admin/groups/{group}/invite", 200)
    assert invite["link"] == f"https://chat.whatsapp.com/{invite['code']}"
    assert invite["code"] == (await sim_group(simulator, group))["invite_code"]
    revoked = await call(bridge, "DELETE", f"admin/groups/{group}/invite", 200)
    assert revoked["code"] != invite["code"]

    await call(bridge, "POST", f"admin/groups/{group}/participants", 200, {"action": "demote", "participants": [me]})
    await event(bridge, 0, kind("group.participants", group, action="demoted"))
    before = await sim_group(simulator, group)
    refused = await call(bridge, "POST", f"admin/groups/{group}/participants", 403,
                         {"action": "add", "participants": [carol]})
    assert refused["error"]["code"] == "not_group_admin" and group in refused["error"]["message"]
    locked = await call(bridge, "PATCH", f"admin/groups/{group}", 403, {"subject": "mine now"})
    assert locked["error"]["code"] == "not_group_admin"
    after = await sim_group(simulator, group)
    assert (after["subject"], len(after["participants"])) == (before["subject"], len(before["participants"]))


async def test_join_by_invite_and_leave_reach_every_member_as_events(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    one = await link(bridge, simulator, "one")
    two = await link(bridge, simulator, "two")
    [alice] = await contacts(simulator, 1)
    group = (await simulator.create_group(alice, "Family", [one])).id
    await event(bridge, 0, lambda e: e.session == "one" and kind("group.update", group, membership="joined")(e))
    code = (await sim_group(simulator, group))["invite_code"]

    joined = await call(bridge, "POST", "two/groups/join", 200, {"code": f"https://chat.whatsapp.com/{code}"})
    assert joined["id"] == group
    seen = await event(bridge, 0, lambda e: e.session == "one" and kind("group.participants", group, action="added")(e))
    assert [p["phone"] for p in seen.data["participants"]] == [two]
    await event(bridge, 0, lambda e: e.session == "two" and kind("group.update", group, membership="joined")(e))

    hello = await simulator.send_to_group(alice, group, text="hi both")
    for session in ("one", "two"):
        got = await event(bridge, 0, lambda e, s=session: e.session == s and message(hello.id)(e))
        assert (got.data["chat"], got.data["sender_phone"]) == (group, alice)
    sent = await call(bridge, "POST", "one/messages", 201, {"to": group, "text": "from session one"})
    got = await event(bridge, 0, lambda e: e.session == "two" and message(sent["id"])(e))
    assert (got.data["chat"], got.data["sender"], got.data["sender_phone"]) == (group, jid(one), one)

    await call(bridge, "POST", f"two/groups/{group}/leave", 200)
    left = await event(bridge, 0, lambda e: e.session == "one" and kind("group.participants", group, action="left")(e))
    assert [p["phone"] for p in left.data["participants"]] == [two]
    await event(bridge, 0, lambda e: e.session == "two" and kind("group.update", group, membership="left")(e))
    outside = await call(bridge, "GET", f"two/groups/{group}", 403)
    assert outside["error"]["code"] == "not_group_member"
    assert {p.jid for p in (await simulator.group(group)).participants} == {jid(alice), jid(one)}


async def test_bad_group_input_is_refused_before_anything_reaches_whatsapp(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    await link(bridge, simulator, "bad")
    [alice, bob] = await contacts(simulator, 2)
    groups_before = len(await simulator.groups())

    def refused(answer: dict[str, Any], code: str, *words: str) -> None:
        assert answer["error"]["code"] == code, answer
        for word in words:
            assert word in answer["error"]["message"], answer

    refused(await call(bridge, "POST", "bad/groups", 422, {"subject": "x", "participants": []}),
            "validation_error", "participants")
    many = [f"1555{n:07d}" for n in range(1024)]
    refused(await call(bridge, "POST", "bad/groups", 422, {"subject": "x", "participants": many}),
            "validation_error", "participants")
    refused(await call(bridge, "POST", "bad/groups", 400, {"subject": "x", "participants": [alice, "not-a-jid"]}),
            "invalid_recipient", "participants[1]")
    refused(await call(bridge, "POST", "bad/groups", 400, {"subject": "x", "participants": [alice, alice]}),
            "invalid_recipient", "twice")
    refused(await call(bridge, "POST", "bad/groups", 400,
                       {"subject": "x", "participants": ["120363000000000001@g.us"]}), "invalid_recipient", "group")
    nobody = fresh_phone()
    refused(await call(bridge, "POST", "bad/groups", 404, {"subject": "x", "participants": [alice, nobody]}),
            "not_on_whatsapp", nobody)
    assert len(await simulator.groups()) == groups_before

    refused(await call(bridge, "GET", "bad/groups/120363999999999999@g.us", 404), "group_not_found")
    refused(await call(bridge, "GET", "bad/groups/hello", 400), "invalid_recipient", "group")
    theirs = (await simulator.create_group(alice, "Not yours", [bob])).id
    refused(await call(bridge, "GET", f"bad/groups/{theirs}", 403), "not_group_member")
    refused(await call(bridge, "POST", f"bad/groups/{theirs}/participants", 403,
                       {"action": "add", "participants": [alice]}), "not_group_member")
    mine = (await call(bridge, "POST", "bad/groups", 201, {"subject": "Mine", "participants": [alice]}))["id"]
    refused(await call(bridge, "POST", f"bad/groups/{mine}/participants", 404,
                       {"action": "remove", "participants": [bob]}), "participant_not_in_group", bob)
    refused(await call(bridge, "PATCH", f"bad/groups/{mine}", 422, {}), "validation_error")
    refused(await call(bridge, "POST", "bad/groups/join", 404, {"code": "AAAAAAAAAAAAAAAAAAAAAA"}), "invite_not_found")
    refused(await call(bridge, "POST", "bad/groups/join", 400, {"code": "not a code!"}), "bad_request")
    assert {p.jid for p in (await simulator.group(mine)).participants} == {jid(alice), *[
        p.jid for p in (await simulator.group(mine)).participants if p.role == "superadmin"]}


async def test_media_goes_to_a_group_and_every_member_decrypts_it_and_a_members_file_is_served(
    media_bridge: Bridge, simulator: SimulatorClient
) -> None:
    bridge = media_bridge
    me = await link(bridge, simulator, "photos")
    members = await contacts(simulator, 3)
    group = (await call(bridge, "POST", "photos/groups", 201, {"subject": "Photos", "participants": members}))["id"]
    image, document = files.png(), files.pdf(60_000)
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731

    sent_image = await call(bridge, "POST", "photos/messages", 201, {
        "to": group, "kind": "image", "data": base64.b64encode(image).decode(), "caption": "the team"})
    form = aiohttp.FormData()
    form.add_field("to", group)
    form.add_field("kind", "document")
    form.add_field("file", document, filename="minutes.pdf", content_type="application/pdf")
    response = await bridge.client.post("/api/v1/sessions/photos/messages", data=form, headers=AUTH)
    assert response.status == 201, await response.text()
    sent_document = await response.json()
    for phone in members:
        for sent, data in ((sent_image, image), (sent_document, document)):
            got_in = await simulator.wait_inbox(phone, lambda m, i=sent["id"]: m.id == i, TIMEOUT)
            assert (got_in.chat, got_in.from_) == (group, jid(me))
            got = await decrypted(simulator, phone, sent["id"])
            assert got["sha256"] == sha(data), (phone, got["field"])
    assert got["file_name"] == "minutes.pdf"

    photo = files.jpeg()
    sent_back = await send_media_to_group(simulator, members[0], group, "image", photo, "image/jpeg", caption="mine")
    arrived = (await event(bridge, 0, message(sent_back))).data
    assert (arrived["chat"], arrived["sender"], arrived["sender_phone"], arrived["kind"], arrived["text"]) == (
        group, jid(members[0]), members[0], "image", "mine")
    served = await bridge.client.get(f"/api/v1/sessions/photos/messages/{sent_back}/media", headers=AUTH)
    assert served.status == 200 and sha(await served.read()) == sha(photo)


async def lid_group(simulator: SimulatorClient, creator: str, subject: str, participants: list[str]) -> str:
    """A group the simulator addresses by LID (`addressing_mode="lid"`), created by contact `creator`."""
    body = {"phone": creator, "subject": subject, "participants": participants, "addressing_mode": "lid"}
    async with aiohttp.ClientSession() as http, http.post(f"{simulator.control_url}/groups", json=body) as r:
        data: dict[str, Any] = await r.json()
        assert r.status == 200, data
        assert data["addressing_mode"] == "lid"
        return str(data["id"])


async def test_a_lid_addressed_group_names_everyone_by_phone_where_whatsapp_gives_it(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "lidg")
    alice, bob = await contacts(simulator, 2)
    lids = {p: (await simulator.contact(p)).lid for p in (alice, bob)}
    group = await lid_group(simulator, alice, "New style", [me, bob])
    joined = await event(bridge, 0, kind("group.update", group, membership="joined"))
    assert joined.data["metadata"]["subject"] == "New style"

    meta = await call(bridge, "GET", f"lidg/groups/{group}", 200)
    people = {p["phone"]: p for p in meta["participants"]}
    assert set(people) == {me, alice, bob}
    assert people[alice]["role"] == "superadmin" and people[alice]["lid"] == lids[alice]
    assert people[bob]["jid"] == jid(bob), "the phone JID WhatsApp gave beside the LID"

    hello = await simulator.send_to_group(alice, group, text="hello by lid")
    got = (await event(bridge, 0, message(hello.id))).data
    assert (got["chat"], got["sender"], got["sender_phone"], got["sender_lid"], got["text"]) == (
        group, jid(alice), alice, lids[alice], "hello by lid")

    sent = await call(bridge, "POST", "lidg/messages", 201,
                      {"to": group, "text": "answer to everyone", "quoted": hello.id})
    for phone in (alice, bob):
        seen = await simulator.wait_inbox(phone, lambda m, i=sent["id"]: m.id == i, TIMEOUT)
        assert (seen.chat, seen.from_, seen.text) == (group, jid(me), "answer to everyone")
        assert seen.quoted is not None and seen.quoted.id == hello.id

    poll = await call(bridge, "POST", "lidg/messages", 201,
                      {"to": group, "kind": "poll", "name": "Meet?", "options": ["mon", "fri"]})
    for phone in (alice, bob):
        await simulator.wait_inbox(phone, lambda m, i=poll["id"]: m.id == i, TIMEOUT)
    tallies = []
    for phone, choice in ((alice, "fri"), (bob, "fri")):
        voted = await simulator.send_to_group(phone, group, "poll_vote", poll_id=poll["id"], options=[choice])
        got = (await event(bridge, 0, message(voted.id))).data
        assert (got["sender_phone"], got["poll_vote"]["selected"]) == (phone, [choice]), "a LID voter's vote"
        tallies.append(got["poll_vote"]["tally"])
    assert tallies == [{"mon": 0, "fri": 1}, {"mon": 0, "fri": 2}]

    removed = await simulator.change_group_participants(alice, group, "remove", [bob])
    assert [r.status for r in removed] == ["200"]
    gone = await event(bridge, 0, kind("group.participants", group, action="removed"))
    assert (gone.data["author_phone"], [p["phone"] for p in gone.data["participants"]]) == (alice, [bob])
