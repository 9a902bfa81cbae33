"""Download and decrypt a received file, into the bounded on-disk cache.

Plan, then execute: `plan_download` reads what the message says (kind, media key, direct path,
hashes) from Baileys' WAMessage as the bridge remembers it - the media key stays inside the bridge
- and `download` executes it so that nothing unchecked is ever served or
cached: one streaming pass fetches the encrypted blob and, chunk by chunk, feeds the HMAC and
fileEncSha256 check and decrypts into a `.part` file beside the cache entry while hashing the
plaintext; only when the HMAC, fileEncSha256 and fileSha256 all match is the `.part` file moved
into place. A blob that fails any check is removed and answered 502 "media corrupt". (One pass, not
"verify then decrypt" in two: half the disk traffic, and an unverified plaintext is never
visible, since the cache serves only moved-in entries.)

The cache is content-addressed by fileSha256 (the same file sent twice is stored once) and bounded
by `media_cache_bytes`: least recently served files go first.
"""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from bridge.media.cipher import MediaCorrupt, MediaDecryptor, MediaKeys, MediaVerifier, media_keys
from bridge.media.errors import MediaFetchFailed, MediaGone, NotMedia
from bridge.media.kinds import FIELD_KIND, MediaKind, rules
from bridge.messages.incoming import content_type, unwrap
from bridge.store import durable

DEFAULT_HOST = "mmg.whatsapp.net"
CHUNK = 1 << 16
KEEPALIVE = 15.0


class DownloadPlan(msgspec.Struct, frozen=True):
    kind: MediaKind
    url: str
    media_key: bytes
    file_sha256: bytes | None
    file_enc_sha256: bytes | None
    mimetype: str
    file_name: str | None

    @property
    def cache_name(self) -> str:
        return (self.file_sha256 or self.file_enc_sha256 or self.media_key).hex()


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return None
    return None


def plan_download(message_id: str, wa: dict[str, Any]) -> DownloadPlan:
    """Where the file of WAMessage `wa` is and how to check it; `NotMedia` (404) when it has none."""
    content = unwrap(wa.get("message")) or {}
    field = content_type(content)
    body = content.get(field) if field else None
    if field not in FIELD_KIND or not isinstance(body, dict):
        raise NotMedia(f"message {message_id} is a {field or 'message'} without a file; download media of image, "
                       "video, audio, voice, document or sticker messages")
    kind = MediaKind.VOICE if field == "audioMessage" and body.get("ptt") else FIELD_KIND[field]
    media_key = _bytes(body.get("mediaKey"))
    direct_path = body.get("directPath") if isinstance(body.get("directPath"), str) else None
    url = body.get("url") if isinstance(body.get("url"), str) else None
    if media_key is None or not (direct_path or url):
        raise NotMedia(f"message {message_id} names no downloadable file (no media key or path)")
    if direct_path:
        host = urlsplit(url).netloc if url else ""
        url = f"https://{host or DEFAULT_HOST}{direct_path}"
    assert url is not None
    claimed, name = body.get("mimetype"), body.get("fileName")
    mimetype = claimed if isinstance(claimed, str) and claimed else rules(kind).default_mimetype
    return DownloadPlan(kind=kind, url=url, media_key=media_key, file_sha256=_bytes(body.get("fileSha256")),
                        file_enc_sha256=_bytes(body.get("fileEncSha256")), mimetype=mimetype,
                        file_name=name if isinstance(name, str) else None)


def ssl_context(trust_ca: str) -> ssl.SSLContext:
    """The system CAs, or only the test media host's CA when `BRIDGE_MEDIA_TRUST_CA` names one."""
    if trust_ca:
        return ssl.create_default_context(cafile=trust_ca)
    return ssl.create_default_context()


def media_connector() -> aiohttp.TCPConnector:
    """Keep-alive connections to the media hosts, for every download of one bridge (a browser and
    Baileys' own download keep theirs too): a fresh connection costs a TCP and a TLS handshake, a
    third of a 1 MB download's time. Idle connections close after `KEEPALIVE` seconds. Make it in the
    running loop; close it at shutdown."""
    return aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE)


async def fetch_and_decrypt(plan: DownloadPlan, target: Path, keys: MediaKeys, *, ssl_ctx: ssl.SSLContext,
                            seconds: float, limit: int, connector: aiohttp.BaseConnector | None = None) -> None:
    """Stream the blob from the media host, decrypting it into `target` as it arrives; raises unless
    the HMAC, fileEncSha256 and fileSha256 all match (`target` is then removed by the caller).
    `connector`: shared keep-alive connections (`media_connector`), else one connection for this
    download."""
    verifier = MediaVerifier(keys, plan.file_enc_sha256)
    decryptor = MediaDecryptor(keys, limit, plan.file_sha256)
    fd = durable.open_scratch(target)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds), connector=connector,
                                         connector_owner=connector is None) as http, \
                http.get(plan.url, ssl=ssl_ctx, headers={"Origin": "https://web.whatsapp.com"}) as response:
            if response.status in (404, 410):
                raise MediaGone(f"the media host no longer has this file (HTTP {response.status}); WhatsApp keeps "
                                "media for a limited time, ask the sender to send it again")
            if response.status != 200:
                raise MediaFetchFailed(f"the media host answered HTTP {response.status}; try again later")
            async for chunk in response.content.iter_chunked(CHUNK):
                body = verifier.update(chunk)
                if verifier.size > limit:
                    raise MediaCorrupt(f"media corrupt: the blob is larger than the {limit} bytes the kind allows")
                durable.append_bytes(fd, decryptor.update(body))
        verifier.finish()
        durable.append_bytes(fd, decryptor.finish())
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaFetchFailed(f"cannot download the media: {exc or type(exc).__name__}; try again later") from None
    finally:
        os.close(fd)


async def download(plan: DownloadPlan, *, target: Path, ssl_ctx: ssl.SSLContext, seconds: float,
                   connector: aiohttp.BaseConnector | None = None) -> None:
    """Execute `plan`: `target` holds the checked plaintext afterwards, or does not exist. The cache
    is scratch (`bridge.media.cache`): the part file and its rename are not fsynced."""
    keys = media_keys(plan.media_key, rules(plan.kind).key_info)
    partial = target.parent / f"{target.name}.{os.getpid()}.part"
    try:
        limit = rules(plan.kind).max_bytes + (1 << 20)
        with durable.store_errors(partial, "downloading media into"):
            await fetch_and_decrypt(plan, partial, keys, ssl_ctx=ssl_ctx, seconds=seconds, limit=limit,
                                    connector=connector)
        durable.rename(partial, target, sync_dirs=False)
    finally:
        durable.remove_file(partial)
