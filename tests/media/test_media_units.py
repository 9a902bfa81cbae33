"""The media operations on their own (no Node, no simulator): cipher, sniffing, previews, Ogg
duration, the cache's check of what an earlier run left, and the URL fetch with its SSRF guard
against a real local HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from bridge.media.cache import MediaCache
from bridge.media.cipher import MediaCorrupt, MediaDecryptor, MediaEncryptor, MediaVerifier, media_keys
from bridge.media.duration import ogg_seconds
from bridge.media.errors import MediaFetchFailed, MediaTooLarge, MediaTypeMismatch, MediaUrlRefused
from bridge.media.fetch import fetch_to_file, refused_address
from bridge.media.kinds import MediaKind
from bridge.media.preview import image_preview
from bridge.media.sniff import resolve_mimetype, sniff
from tests.media import files

INFO = "WhatsApp Document Keys"


def seal(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    enc = MediaEncryptor(os.urandom(32), INFO)
    body = b"".join(enc.update(data[i:i + 1000]) for i in range(0, len(data), 1000))
    tail, sealed = enc.finish()
    return body + tail, sealed.media_key, sealed.file_sha256, sealed.file_enc_sha256


def open_blob(blob: bytes, media_key: bytes, plain_sha: bytes, enc_sha: bytes) -> bytes:
    keys = media_keys(media_key, INFO)
    verifier = MediaVerifier(keys, enc_sha)
    for i in range(0, len(blob), 777):
        verifier.update(blob[i:i + 777])
    verifier.finish()
    decryptor = MediaDecryptor(keys, len(blob) - 10, plain_sha)
    out = b"".join(decryptor.update(blob[i:i + 4096]) for i in range(0, len(blob), 4096))
    return out + decryptor.finish()


@pytest.mark.parametrize("size", [1, 15, 16, 17, 100_003])
def test_what_is_encrypted_decrypts_to_the_same_bytes_in_chunks_of_any_size(size: int) -> None:
    data = os.urandom(size)
    blob, key, plain_sha, enc_sha = seal(data)
    assert plain_sha == hashlib.sha256(data).digest() and enc_sha == hashlib.sha256(blob).digest()
    assert open_blob(blob, key, plain_sha, enc_sha) == data


def test_a_tampered_blob_or_a_wrong_hash_is_refused_as_corrupt() -> None:
    blob, key, plain_sha, enc_sha = seal(os.urandom(5000))
    flipped = bytes([blob[0] ^ 1]) + blob[1:]
    with pytest.raises(MediaCorrupt, match="HMAC"):
        open_blob(flipped, key, plain_sha, hashlib.sha256(flipped).digest())
    with pytest.raises(MediaCorrupt, match="fileEncSha256"):
        open_blob(blob, key, plain_sha, hashlib.sha256(b"other").digest())
    with pytest.raises(MediaCorrupt, match="fileSha256"):
        open_blob(blob, key, hashlib.sha256(b"other").digest(), enc_sha)


async def test_a_cache_entry_an_earlier_run_left_is_served_only_if_it_hashes_to_its_name(tmp_path: Path) -> None:
    whole, torn = os.urandom(3000), os.urandom(3000)
    for data in (whole, torn):
        (tmp_path / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (tmp_path / hashlib.sha256(torn).hexdigest()).write_bytes(torn[:1000])  # a power cut's half-written file
    cache = MediaCache(tmp_path, 1 << 20)

    found = await cache.hit(hashlib.sha256(whole).hexdigest(), hashlib.sha256(whole).digest())
    assert found is not None and found.read_bytes() == whole
    assert await cache.hit(hashlib.sha256(torn).hexdigest(), hashlib.sha256(torn).digest()) is None
    assert not (tmp_path / hashlib.sha256(torn).hexdigest()).exists(), "removed, to be downloaded again"
    assert await cache.hit("absent", None) is None

    placed = os.urandom(100)
    name = hashlib.sha256(placed).hexdigest()
    (tmp_path / name).write_bytes(placed)
    cache.placed(name)
    assert await cache.hit(name, bytes(32)) == tmp_path / name, "what this process placed is not hashed again"


def test_the_real_type_is_sniffed_and_a_wrong_claim_is_corrected() -> None:
    assert sniff(files.png()) == "image/png" and sniff(files.jpeg()) == "image/jpeg"
    assert sniff(files.webp()) == "image/webp" and sniff(files.pdf()) == "application/pdf"
    assert sniff(files.mp4()) == "video/mp4" and sniff(files.mp3()) == "audio/mpeg"
    assert sniff(files.ogg_opus()) == "audio/ogg; codecs=opus"
    assert resolve_mimetype(MediaKind.IMAGE, files.png()[:64], "image/jpeg", 100) == "image/png"
    assert resolve_mimetype(MediaKind.DOCUMENT, b"plain text", "text/csv", 10) == "text/csv"
    with pytest.raises(MediaTypeMismatch, match="application/pdf"):
        resolve_mimetype(MediaKind.IMAGE, files.pdf()[:64], "image/png", 100)
    with pytest.raises(MediaTypeMismatch):
        resolve_mimetype(MediaKind.VOICE, files.mp3()[:64], None, 100)
    with pytest.raises(MediaTooLarge, match="static sticker"):
        resolve_mimetype(MediaKind.STICKER, files.webp()[:64], None, 200 * 1024)


def test_an_image_gets_its_dimensions_and_a_small_jpeg_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(files.png(300, 100))
    preview = image_preview(path)
    assert (preview.width, preview.height) == (300, 100) and preview.jpeg_thumbnail
    with Image.open(io.BytesIO(preview.jpeg_thumbnail)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 72
    path.write_bytes(b"not an image")
    assert image_preview(path).jpeg_thumbnail is None


def test_an_ogg_opus_voice_note_knows_its_length(tmp_path: Path) -> None:
    path = tmp_path / "v.ogg"
    path.write_bytes(files.ogg_opus(3))
    assert ogg_seconds(path) == 3
    path.write_bytes(files.mp3())
    assert ogg_seconds(path) is None


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 serving a file, redirects, a big file and a slow answer."""
    payload = os.urandom(50_000)

    async def file(_: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/pdf")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def big(_: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(_)
        for _i in range(40):
            await response.write(b"x" * 10_000)
        return response

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get("/file", file)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def only_this_loopback(address: str) -> str | None:
    """The test's stand-in for a public address: exactly 127.0.0.1; everything else as in production."""
    return None if address == "127.0.0.1" else refused_address(address)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]/x", "http://192.168.1.1/x", "http://localhost:9/x", "ftp://example.com/x"])
async def test_urls_into_the_bridges_network_are_refused_before_connecting(url: str, tmp_path: Path) -> None:
    with pytest.raises(MediaUrlRefused):
        await fetch_to_file(url, tmp_path / "f", limit=1000, seconds=5)
    assert not (tmp_path / "f").exists()


async def test_a_url_is_fetched_within_its_limits_and_redirects_are_checked_again(origin: str, tmp_path: Path) -> None:
    size, served = await fetch_to_file(f"{origin}/redirect?to=/file", tmp_path / "ok", limit=100_000, seconds=5,
                                       refuse=only_this_loopback)
    assert size == 50_000 and served == "application/pdf"
    for private in ("http://127.0.0.2:1/file", "http://169.254.169.254/latest", "http://10.0.0.1/"):
        with pytest.raises(MediaUrlRefused):
            await fetch_to_file(f"{origin}/redirect?to={private}", tmp_path / "r", limit=100_000, seconds=5,
                                refuse=only_this_loopback)
    with pytest.raises(MediaTooLarge):
        await fetch_to_file(f"{origin}/big", tmp_path / "big", limit=100_000, seconds=5, refuse=only_this_loopback)
    assert not (tmp_path / "big").exists(), "a refused download leaves nothing behind"
    with pytest.raises(MediaFetchFailed, match="within"):
        await fetch_to_file(f"{origin}/slow", tmp_path / "slow", limit=100_000, seconds=0.5, refuse=only_this_loopback)
