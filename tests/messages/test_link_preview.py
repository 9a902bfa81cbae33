"""Link previews, fetched by Python and carried by Baileys (docs/messages.md "Link previews").

Specification: a text with a URL reaches the contact with the page's OpenGraph title, description
and a JPEG thumbnail of its image, fetched by the bridge (a real local web server here, so the
private-address guard is lifted with BRIDGE_MEDIA_FETCH_ALLOW_PRIVATE); with the guard on, the
same private URL gives no preview and the text still goes; `link_preview: false` on a message and
`BRIDGE_LINK_PREVIEW=false` give none; the Node runtime never fetches the page (the server counts
who asked).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bridge.media.link_preview import first_url, parse_page
from tests.api.conftest import Bridge, _bridge, make_settings
from tests.messages.test_e2e_messages import TIMEOUT, fresh_phone, link, send
from tests.simulator.client import SimulatorClient

PAGE = """<html><head><title>Plain title</title>
<meta property="og:title" content="Spring sale &amp; more">
<meta property="og:description" content="Everything  20% off until Sunday.">
<meta property="og:image" content="/cover.png"></head><body>hello</body></html>"""


def cover() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[str]]]:
    """A real web server on 127.0.0.1: the page and its image; `hits` records each request path."""
    hits: list[str] = []
    image = cover()

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text=PAGE, content_type="text/html")

    async def png(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=image, content_type="image/png")

    app = web.Application()
    app.router.add_get("/sale", page)
    app.router.add_get("/cover.png", png)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def make_bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient,
                      **overrides: Any) -> AsyncIterator[Bridge]:
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub, **overrides)
    async for b in _bridge(settings, aiohttp_client):
        yield b


async def inbox_entry(simulator: SimulatorClient, phone: str, message_id: str) -> dict[str, Any]:
    await simulator.wait_inbox(phone, lambda m: m.id == message_id, TIMEOUT)
    async with aiohttp.ClientSession() as http, http.get(f"{simulator.control_url}/contacts/{phone}/inbox") as r:
        entries: list[dict[str, Any]] = await r.json()
    return next(e for e in entries if e["id"] == message_id)


def test_the_first_url_and_the_page_head_are_read_as_whatsapp_shows_them() -> None:
    assert first_url("see https://shop.example/sale?x=1, and more") == "https://shop.example/sale?x=1"
    assert first_url("no link here, only shop.example") is None
    assert parse_page(PAGE) == ("Spring sale & more", "Everything 20% off until Sunday.", "/cover.png")
    assert parse_page("<title> Just a title </title>") == ("Just a title", None, None)


async def test_a_text_with_a_url_carries_the_preview_python_fetched(
    tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient, site: tuple[str, list[str]]
) -> None:
    base, hits = site
    async for bridge in make_bridge(tmp_path, aiohttp_client, simulator, media_fetch_allow_private=True):
        await link(bridge, simulator, "links")
        contact = fresh_phone()
        await simulator.create_contact(contact)
        sent = await send(bridge, "links", to=contact, text=f"our sale: {base}/sale !")
        got = await inbox_entry(simulator, contact, sent["id"])
        assert got["text"] == f"our sale: {base}/sale !"
        preview = got["link_preview"]
        assert (preview["matched_text"], preview["title"], preview["description"]) == (
            f"{base}/sale", "Spring sale & more", "Everything 20% off until Sunday.")
        assert preview["thumbnail_bytes"] > 0
        assert hits == ["/sale", "/cover.png"], "the bridge fetched page and image once each; Node fetched nothing"

        hits.clear()
        plain = await send(bridge, "links", to=contact, text=f"no preview please {base}/sale", link_preview=False)
        assert "link_preview" not in await inbox_entry(simulator, contact, plain["id"])
        assert hits == []


async def test_private_urls_and_the_setting_give_no_preview_and_the_text_still_goes(
    tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient, site: tuple[str, list[str]]
) -> None:
    base, hits = site
    async for bridge in make_bridge(tmp_path / "guarded", aiohttp_client, simulator):
        await link(bridge, simulator, "guarded")
        contact = fresh_phone()
        await simulator.create_contact(contact)
        sent = await send(bridge, "guarded", to=contact, text=f"inside: {base}/sale")
        got = await inbox_entry(simulator, contact, sent["id"])
        assert got["text"] == f"inside: {base}/sale" and "link_preview" not in got
        assert hits == [], "the guard refused 127.0.0.1 before connecting"
    async for bridge in make_bridge(tmp_path / "off", aiohttp_client, simulator, link_preview=False,
                                    media_fetch_allow_private=True):
        await link(bridge, simulator, "off")
        contact = fresh_phone()
        await simulator.create_contact(contact)
        sent = await send(bridge, "off", to=contact, text=f"off: {base}/sale")
        assert "link_preview" not in await inbox_entry(simulator, contact, sent["id"])
        assert hits == []
