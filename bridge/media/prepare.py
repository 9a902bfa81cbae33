"""Plan and make an outgoing media file ready for Node: check, sniff, preview, encrypt into the spool.

Order matters and is the point of this module: every refusal (empty, over the kind's limit, a
type that cannot go as the kind) happens before anything is written to the spool, so a refused
file never reaches Node. Then the blob is encrypted into the spool in one streaming pass (a thread:
AES and sha256 are CPU work) and the plaintext copy is removed by the caller.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import msgspec

from bridge.ipc import messaging as ipc
from bridge.media.cipher import MediaEncryptor, Sealed, new_media_key
from bridge.media.duration import ogg_seconds
from bridge.media.errors import MediaEmpty, MediaTooLarge
from bridge.media.kinds import MediaKind, human, rules
from bridge.media.preview import Preview, image_preview
from bridge.media.sniff import HEAD, resolve_mimetype
from bridge.media.spool import Spool
from bridge.store import durable

CHUNK = 1 << 16


class MediaRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the client asked for, besides the bytes."""

    kind: MediaKind
    claimed_mimetype: str | None = None
    caption: str | None = None
    file_name: str | None = None
    gif_playback: bool = False


class Prepared(msgspec.Struct, frozen=True):
    content: ipc.MediaContent
    spool_file: Path
    """The encrypted blob Node reads; remove it once the send is answered."""


def check_size(kind: MediaKind, size: int) -> None:
    limit = rules(kind).max_bytes
    if size == 0:
        raise MediaEmpty(f"the {kind} file is empty (0 bytes); send the file's content")
    if size > limit:
        raise MediaTooLarge(f"the {kind} is {human(size)}; WhatsApp accepts at most {human(limit)} for a {kind}"
                            + ("" if kind is MediaKind.DOCUMENT else "; send it as a document or smaller"))


async def prepare(request: MediaRequest, plain: Path, spool: Spool) -> Prepared:
    """Check `plain` (the client's file) and encrypt it into the spool; see the module docstring."""
    size, head = await asyncio.to_thread(_size_and_head, plain)
    check_size(request.kind, size)
    mimetype = resolve_mimetype(request.kind, head, request.claimed_mimetype, size)
    preview = await asyncio.to_thread(image_preview, plain) if request.kind is MediaKind.IMAGE else Preview()
    seconds = ogg_seconds(plain) if request.kind in (MediaKind.VOICE, MediaKind.AUDIO) else None
    target = spool.outgoing_path()
    with durable.store_errors(target, "encrypting media into"):
        sealed = await asyncio.to_thread(encrypt_file, plain, target, rules(request.kind).key_info)
    content = ipc.MediaContent(
        media_type=rules(request.kind).upload_type,  # type: ignore[arg-type]
        path=str(target.resolve()), media_key=b64(sealed.media_key), file_sha256=b64(sealed.file_sha256),
        file_enc_sha256=b64(sealed.file_enc_sha256), file_length=sealed.file_length, mimetype=mimetype,
        caption=request.caption or None,
        file_name=(request.file_name or "file") if request.kind is MediaKind.DOCUMENT else None,
        ptt=request.kind is MediaKind.VOICE, gif_playback=request.gif_playback and request.kind is MediaKind.VIDEO,
        seconds=seconds, width=preview.width, height=preview.height,
        jpeg_thumbnail=b64(preview.jpeg_thumbnail) if preview.jpeg_thumbnail else None,
    )
    return Prepared(content=content, spool_file=target)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _size_and_head(path: Path) -> tuple[int, bytes]:
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, f.read(HEAD)


def encrypt_file(plain: Path, target: Path, key_info: str) -> Sealed:
    """Encrypt `plain` into a new file `target` (streaming); the target is removed on failure."""
    encryptor = MediaEncryptor(new_media_key(), key_info)
    fd = durable.open_scratch(target)
    try:
        with plain.open("rb") as source:
            while chunk := source.read(CHUNK):
                durable.append_bytes(fd, encryptor.update(chunk))
        tail, sealed = encryptor.finish()
        durable.append_bytes(fd, tail)
    except BaseException:
        os.close(fd)
        durable.remove_file(target)
        raise
    os.close(fd)
    return sealed
