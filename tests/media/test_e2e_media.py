"""Media over HTTP against real sessions (real Node, real Baileys) and the simulator's media host.

Specification: a file of each kind sent through the API is uploaded by Baileys and decrypted by
the contact byte for byte (same sha256), with the real (sniffed) type and a thumbnail for images;
a file of each kind a contact sends is served by `GET .../media` byte for byte, and its media key
never appears in an event; a tampered blob is refused (502) and nothing is cached; bad input
(oversize, empty, wrong type, private URLs and redirects to them) is refused before anything reaches
Node.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.media.spool import media_dir
from tests.api.conftest import AUTH, Bridge, _bridge, make_settings
from tests.media import files
from tests.media.sim_media import decrypted, trust_file
from tests.messages.test_e2e_messages import fresh_phone, link
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

    sent = await post(bridge, "out", to=contact, kind="image", data=b64(image), mimetype="image/jpeg",
                      caption="a chart")
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
    assert me
