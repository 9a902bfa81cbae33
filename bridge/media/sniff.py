"""The real type of a file, from its first bytes (the client's claimed mimetype is not trusted).

Why: WhatsApp clients pick the viewer by the message's mimetype; a PNG sent as `image/jpeg` or a
PDF claimed as an image shows as broken on the phone. The magic numbers below cover what the
six kinds carry; anything else is a document of the claimed type (or octet-stream).
"""

from __future__ import annotations

from bridge.media.errors import MediaTooLarge, MediaTypeMismatch
from bridge.media.kinds import STATIC_STICKER_MAX, MediaKind, human, rules

HEAD = 64
"""Bytes of the file's beginning that `sniff` needs."""

_FTYP_BRANDS = {
    b"M4A ": "audio/mp4", b"M4B ": "audio/mp4", b"qt  ": "video/quicktime", b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp", b"3gp6": "video/3gpp", b"3g2a": "video/3gpp",
}


def sniff(head: bytes) -> str | None:
    """The mimetype the first bytes prove, or None when they prove nothing known."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head.startswith(b"OggS"):
        return "audio/ogg; codecs=opus" if b"OpusHead" in head else "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0:
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def webp_animated(head: bytes) -> bool:
    """A VP8X WebP with the animation flag (bit 1 of the flags byte)."""
    return head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)


def resolve_mimetype(kind: MediaKind, head: bytes, claimed: str | None, size: int) -> str:
    """The mimetype to send: the sniffed one; for documents the claimed one when nothing is sniffed.

    Raises `MediaTypeMismatch` (415) when the file cannot go as `kind` (a PDF as an image, an MP3
    as a voice note), `MediaTooLarge` (413) for a static sticker over 100 KB.
    """
    found = sniff(head)
    kind_rules = rules(kind)
    if not kind_rules.mimetypes:
        if found:
            return found
        return (claimed or kind_rules.default_mimetype).strip()[:255]
    if found is None or found not in kind_rules.mimetypes:
        what = found or "an unknown type"
        allowed = ", ".join(sorted(kind_rules.mimetypes))
        raise MediaTypeMismatch(f"the file is {what}, which WhatsApp does not show as {kind}; send {allowed}, "
                                "or send it as a document")
    if kind is MediaKind.STICKER and not webp_animated(head) and size > STATIC_STICKER_MAX:
        raise MediaTooLarge(f"a static sticker may be at most {human(STATIC_STICKER_MAX)} (this one is {human(size)}); "
                            "shrink it")
    return found
