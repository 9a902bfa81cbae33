"""Media over HTTP against real sessions (real Node, real Baileys) and the simulator's media host.

Specification: a file of each kind sent through the API is uploaded by Baileys and decrypted by
the contact byte for byte (same sha256), with the real (sniffed) type and a thumbnail for images;
a file of each kind a contact sends is served by `GET .../media` byte for byte (the downloads share
one kept-alive connection to the media host), and its media key never appears in an event; a
tampered blob is refused (502) and nothing is cached; bad input (oversize, empty, wrong type,
private URLs and redirects to them) is refused before anything reaches Node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from bridge.media.spool import media_dir
from tests.api.conftest import AUTH, Bridge, _bridge, make_settings
from tests.media import files
from tests.media.sim_media import decrypted, expire, media_host_port, reuploads, send_media, tamper, trust_file
from tests.messages.test_e2e_messages import TIMEOUT, event, fresh_phone, link, message, tap_upserts
from tests.simulator.client import SimulatorClient

sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731


@pytest.fixture
async def bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                 ) -> AsyncIterator[Bridge]:
    ca = await trust_file(simulator, tmp_path)
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             media_trust_ca=str(ca), max_body_bytes=1 << 20)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def post(b: Bridge, session: str, status: int = 201, **body: Any) -> dict[str, Any]:
    response = await b.client.post(f"/api/v1/sessions/{session}/messages", json=body, headers=AUTH)
    answer: dict[str, Any] = await response.json()
    assert response.status == status, answer
    return answer


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


async def connections_to(port: int, settle_at: int) -> int:
    """Open TCP connections of this process (the bridge's) to `port`; waits up to 5 s for the count
    to reach `settle_at` (a closed socket goes away on a later turn of the loop)."""
    for _ in range(50):
        count = sum(1 for c in psutil.Process().net_connections("tcp")
                    if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)
        if count == settle_at:
            break
        await asyncio.sleep(0.1)
    return count


def spool_files(b: Bridge) -> list[Path]:
    folder = media_dir(b.settings)
    return [p for p in folder.rglob("*") if p.is_file() and "cache" not in p.parts]


async def test_every_kind_sent_over_http_is_decrypted_by_the_contact_byte_for_byte(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "out")
    contact = fresh_phone()
    await simulator.create_contact(contact, push_name="Dora")
    image, document, video, audio, voice, sticker = (files.png(), files.pdf(), files.mp4(), files.mp3(),
                                                      files.ogg_opus(3), files.webp())
    question = await simulator.send_from_contact(contact, me, "send me the chart?")
    await event(bridge, 0, message(question.id))

    sent = await post(bridge, "out", to=contact, kind="image", data=b64(image), mimetype="image/jpeg",
                      caption="a chart", quoted=question.id)
    reply = await simulator.wait_inbox(contact, lambda m: m.id == sent["id"], TIMEOUT)
    assert reply.kind == "image" and reply.quoted is not None and reply.quoted.id == question.id
    got = await decrypted(simulator, contact, sent["id"])
    assert got["sha256"] == sha(image) and got["size"] == len(image)
    assert got["mimetype"] == "image/png", "the claimed image/jpeg is corrected by sniffing"
    assert got["caption"] == "a chart" and got["thumbnail_bytes"] > 0 and (got["width"], got["height"]) == (240, 160)

    form = aiohttp.FormData()
    form.add_field("to", contact)
    form.add_field("kind", "document")
    form.add_field("caption", "the invoice")
    form.add_field("file", document, filename="invoice.pdf", content_type="application/octet-stream")
    response = await bridge.client.post("/api/v1/sessions/out/messages", data=form, headers=AUTH)
    assert response.status == 201, await response.text()
    got = await decrypted(simulator, contact, (await response.json())["id"])
    assert (got["sha256"], got["mimetype"], got["file_name"], got["caption"]) == (
        sha(document), "application/pdf", "invoice.pdf", "the invoice")

    for kind, data in (("video", video), ("audio", audio), ("voice", voice), ("sticker", sticker)):
        sent = await post(bridge, "out", to=contact, kind=kind, data=b64(data))
        got = await decrypted(simulator, contact, sent["id"])
        assert got["sha256"] == sha(data), kind
        assert got["ptt"] is (kind == "voice")
    assert got["field"] == "stickerMessage"
    voice_note = next(m for m in await simulator.inbox(contact) if m.kind == "voice")
    assert voice_note.media is not None
    assert spool_files(bridge) == [], "the spool is emptied once each send is answered"


async def test_every_kind_a_contact_sends_is_served_byte_for_byte_and_its_key_never_leaves(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "in")
    contact = fresh_phone()
    await simulator.create_contact(contact, push_name="Eve")
    samples = [("image", files.jpeg(), "image/jpeg", {"caption": "look"}),
               ("video", files.mp4(), "video/mp4", {}), ("audio", files.mp3(), "audio/mpeg", {}),
               ("voice", files.ogg_opus(2), "audio/ogg; codecs=opus", {}),
               ("document", files.pdf(), "application/pdf", {"file_name": "report.pdf", "caption": "Q3"}),
               ("sticker", files.webp(), "image/webp", {})]
    events = []
    for kind, data, mimetype, extra in samples:
        message_id = await send_media(simulator, contact, me, kind, data, mimetype, **extra)
        got = await event(bridge, 0, message(message_id))
        events.append(got)
        assert got.data["kind"] == kind and got.data["media"]["sha256"] == sha(data)
        response = await bridge.client.get(f"/api/v1/sessions/in/messages/{message_id}/media", headers=AUTH)
        body = await response.read()
        assert response.status == 200, body[:300]
        assert sha(body) == sha(data), kind
        assert response.headers["Content-Type"].split(";")[0] == mimetype.split(";")[0]
        if kind == "document":
            assert response.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
            assert got.data["text"] == "Q3"
    serialised = json.dumps([e.data for e in events])
    for secret in ("mediaKey", "media_key", "directPath", "direct_path"):
        assert secret not in serialised
    port = await media_host_port(simulator)
    assert await connections_to(port, settle_at=1) == 1, "the six downloads shared one kept-alive connection"
    await bridge.manager.media.close()
    assert await connections_to(port, settle_at=0) == 0, "closing the media desk closes it"

    again = await bridge.client.get(f"/api/v1/sessions/in/messages/{events[0].data['id']}/media", headers=AUTH)
    assert again.status == 200 and sha(await again.read()) == sha(samples[0][1]), "served from the cache"

    bad = await send_media(simulator, contact, me, "document", files.pdf(), "application/pdf", file_name="x.pdf")
    await event(bridge, 0, message(bad))
    await tamper(simulator, contact, bad)
    response = await bridge.client.get(f"/api/v1/sessions/in/messages/{bad}/media", headers=AUTH)
    answer = await response.json()
    assert response.status == 502 and answer["error"]["code"] == "media_corrupt", answer
    cache = media_dir(bridge.settings) / "cache"
    assert len(list(cache.iterdir())) == len(samples), "nothing of the tampered file is cached"
    assert spool_files(bridge) == []

    text = await simulator.send_from_contact(contact, me, "no file here")
    await event(bridge, 0, message(text.id))
    response = await bridge.client.get(f"/api/v1/sessions/in/messages/{text.id}/media", headers=AUTH)
    assert response.status == 404 and (await response.json())["error"]["code"] == "not_media"


async def test_bad_files_and_private_urls_are_refused_and_nothing_reaches_node(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    await link(bridge, simulator, "bad")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    calls: list[str] = []
    port = bridge.manager.messages.sessions
    original = port.call

    def tap(session: str, cmd: str, args: dict[str, Any]) -> Any:
        calls.append(cmd)
        return original(session, cmd, args)

    port.call = tap  # type: ignore[method-assign]

    form = aiohttp.FormData()
    form.add_field("to", contact)
    form.add_field("kind", "image")
    form.add_field("file", b"\xff\xd8\xff" + bytes(17 << 20), filename="huge.jpg", content_type="image/jpeg")
    response = await bridge.client.post("/api/v1/sessions/bad/messages", data=form, headers=AUTH)
    answer = await response.json()
    assert response.status == 413 and "16 MB" in answer["error"]["message"], answer

    refusals = [
        ({"kind": "image", "data": b64(files.pdf())}, 415, "media_type_mismatch"),
        ({"kind": "voice", "data": b64(files.mp3())}, 415, "media_type_mismatch"),
        ({"kind": "document", "data": ""}, 422, "media_empty"),
        ({"kind": "document", "data": "not base64!"}, 422, "validation_error"),
        ({"kind": "document", "data": b64(b"x"), "url": "https://example.com/x"}, 422, "validation_error"),
        ({"kind": "sticker", "data": b64(files.webp() + bytes(120_000))}, 413, "media_too_large"),
        ({"kind": "audio", "data": b64(files.mp3()), "caption": "no"}, 422, "validation_error"),
    ]
    for url in ("http://127.0.0.1:1/a.pdf", "http://10.0.0.7/a.pdf", "http://169.254.169.254/latest/meta-data",
                "http://localhost:1/a.pdf", "file:///etc/passwd"):
        refusals.append(({"kind": "document", "url": url}, 400, "media_url_refused"))
    for body, status, code in refusals:
        answer = await post(bridge, "bad", status, to=contact, **body)
        assert answer["error"]["code"] == code, (body.get("url") or body["kind"], answer)
    assert calls == [], "nothing refused reached the Node runtime"
    assert spool_files(bridge) == []
    assert not [m for m in await simulator.inbox(contact) if m.kind != "text"]


@pytest.fixture
async def auto_bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                      ) -> AsyncIterator[Bridge]:
    ca = await trust_file(simulator, tmp_path)
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             media_trust_ca=str(ca), media_auto_download="image,document",
                             media_auto_download_max_bytes=200_000)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def test_auto_download_puts_chosen_kinds_in_the_cache_before_their_event_and_keeps_the_order(
    auto_bridge: Bridge, simulator: SimulatorClient
) -> None:
    arrived = tap_upserts(auto_bridge)
    me = await link(auto_bridge, simulator, "auto")
    contact = fresh_phone()
    await simulator.create_contact(contact, push_name="Flo")
    cache = media_dir(auto_bridge.settings) / "cache"
    image, small_pdf, big_pdf, video = files.jpeg(), files.pdf(40_000), files.pdf(300_000), files.mp4()
    seen: list[dict[str, Any]] = []

    async def record() -> None:
        async for e in auto_bridge.bus.subscribe("auto", after=0):
            if e.kind == "message":
                seen.append(e.data)
                cached = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
                e.data["_cached_at_event"] = cached

    recorder = asyncio.create_task(record())
    try:
        ids = [await send_media(simulator, contact, me, "image", image, "image/jpeg"),
               (await simulator.send_from_contact(contact, me, "right after the photo")).id,
               await send_media(simulator, contact, me, "document", small_pdf, "application/pdf", file_name="a.pdf"),
               await send_media(simulator, contact, me, "document", big_pdf, "application/pdf", file_name="b.pdf"),
               await send_media(simulator, contact, me, "video", video, "video/mp4")]
        for message_id in ids:
            await event(auto_bridge, 0, message(message_id))
    finally:
        recorder.cancel()
    order = list(dict.fromkeys(wa["key"]["id"] for wa in arrived if wa["key"]["id"] in ids))
    assert sorted(order) == sorted(ids)
    assert [m["id"] for m in seen if m["id"] in ids] == order, "held media events keep the order messages arrived in"
    by_id = {m["id"]: m for m in seen}
    for message_id, data in ((ids[0], image), (ids[2], small_pdf)):
        got = by_id[message_id]
        assert sha(data) in got["_cached_at_event"], "the file was in the cache when the event went out"
        assert got["media"]["url"] == f"/api/v1/sessions/auto/messages/{message_id}/media"
        response = await auto_bridge.client.get(got["media"]["url"], headers=AUTH)
        assert response.status == 200 and sha(await response.read()) == sha(data)
    for message_id in (ids[3], ids[4]):
        assert "url" not in by_id[message_id]["media"], "over the size limit, or a kind not chosen"
    assert sha(big_pdf) not in by_id[ids[4]]["_cached_at_event"]


async def test_an_expired_file_is_uploaded_again_by_the_senders_phone_and_served(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "old")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    data = files.pdf(70_000)
    message_id = await send_media(simulator, contact, me, "document", data, "application/pdf", file_name="old.pdf")
    await event(bridge, 0, message(message_id))
    await expire(simulator, contact, message_id)
    before = await reuploads(simulator)

    response = await bridge.client.get(f"/api/v1/sessions/old/messages/{message_id}/media", headers=AUTH)
    body = await response.read()
    assert response.status == 200, body[:300]
    assert sha(body) == sha(data), "the re-uploaded file is the same file, checked against the same hashes"
    assert await reuploads(simulator) == before + 1, "the bridge asked the sender's phone (updateMediaMessage)"

    lost = await send_media(simulator, contact, me, "image", files.jpeg(), "image/jpeg")
    await event(bridge, 0, message(lost))
    await expire(simulator, contact, lost, everywhere=True)
    response = await bridge.client.get(f"/api/v1/sessions/old/messages/{lost}/media", headers=AUTH)
    answer = await response.json()
    assert response.status == 410 and answer["error"]["code"] == "media_gone", answer
    assert "upload it again failed" in answer["error"]["message"]
    assert not (media_dir(bridge.settings) / "cache" / sha(files.jpeg())).exists()
