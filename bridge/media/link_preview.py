"""The link preview of an outgoing text: title, description and a small thumbnail of its first URL.

Why here and not in Baileys: Baileys would fetch the page from the Node runtime, which has no
business on the network beyond WhatsApp (and link-preview-js is not installed). Python fetches it
with the media fetch's SSRF guard (`bridge.media.fetch`: public addresses only, every redirect
checked, unless `BRIDGE_MEDIA_FETCH_ALLOW_PRIVATE`), reads at most `PAGE_LIMIT` bytes of HTML,
takes OpenGraph tags (`og:title`, `og:description`, `og:image`) or else `<title>` and
the `description` meta tag, and fetches the image (at most `IMAGE_LIMIT` bytes) for a JPEG
thumbnail (Pillow). Anything that fails - an unreachable or refused URL, not HTML, no title -
gives no preview; the text is sent all the same.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

from PIL import Image, UnidentifiedImageError

from bridge.errors import BridgeError
from bridge.ipc import messaging as ipc
from bridge.media.fetch import Policy, fetch_head
from bridge.media.preview import MAX_PIXELS, THUMB_QUALITY

log = logging.getLogger(__name__)
PAGE_LIMIT = 512 << 10
IMAGE_LIMIT = 2 << 20
THUMB_SIDE = 140
"""WhatsApp shows a link preview's thumbnail larger than a media thumbnail."""
MAX_TEXT = 300
URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def first_url(text: str) -> str | None:
    """The first http(s) URL in `text` (trailing punctuation left out), or None."""
    found = URL.search(text)
    return found.group(0).rstrip(".,;:!?)]}'\"") if found else None


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "meta":
            name = (values.get("property") or values.get("name") or "").lower()
            if name and "content" in values and name not in self.meta:
                self.meta[name] = values["content"].strip()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < MAX_TEXT:
            self.title += data


def _clip(text: str | None) -> str | None:
    text = " ".join((text or "").split())
    return text[:MAX_TEXT] or None


def parse_page(html: str) -> tuple[str | None, str | None, str | None]:
    """(title, description, image URL) of a page's head."""
    head = _Head()
    head.feed(html)
    meta = head.meta
    return (_clip(meta.get("og:title") or head.title), _clip(meta.get("og:description") or meta.get("description")),
            meta.get("og:image") or None)


def thumbnail(data: bytes) -> bytes | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=THUMB_QUALITY)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


async def link_preview(text: str, *, seconds: float, refuse: Policy | None) -> ipc.LinkPreview | None:
    """The preview of the first URL in `text`, or None (see the module docstring)."""
    url = first_url(text)
    if url is None:
        return None
    try:
        page, content_type, final = await fetch_head(url, limit=PAGE_LIMIT, seconds=seconds, refuse=refuse)
        if content_type and "html" not in content_type.lower():
            return None
        title, description, image_url = parse_page(page.decode("utf-8", "replace"))
        if title is None:
            return None
        jpeg = None
        if image_url:
            try:
                image, _, _ = await fetch_head(urljoin(final, image_url), limit=IMAGE_LIMIT, seconds=seconds,
                                               refuse=refuse)
                jpeg = thumbnail(image)
            except BridgeError as exc:
                log.info("link preview of %s: no thumbnail (%s)", url[:200], exc)
    except BridgeError as exc:
        log.info("link preview of %s: none (%s)", url[:200], exc)
        return None
    return ipc.LinkPreview(matched_text=url, title=title, description=description,
                           jpeg_thumbnail=base64.b64encode(jpeg).decode() if jpeg else None)
