"""The six media kinds and WhatsApp's rules for each: which upload type and key family Baileys
uses, the largest file WhatsApp accepts, and which real types (sniffed, not claimed) may go as
that kind.

Why in one table: the same facts decide the refusal (413 with the limit, 415 for a type that does
not fit the kind), the key derivation (`bridge.media.cipher`) and the content Node hands Baileys.
The limits are WhatsApp's documented ones (16 MB for photos, videos and voice notes; 100 MB for
documents; 100 KB static / 500 KB animated stickers); the server refuses more, so the bridge
refuses it first, before anything reaches Node.
"""

from __future__ import annotations

import enum

import msgspec

MB = 1 << 20


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    DOCUMENT = "document"
    STICKER = "sticker"


class KindRules(msgspec.Struct, frozen=True):
    upload_type: str
    """Baileys' media type: the upload path (`/mms/<type>`) and the message field (`<type>Message`)."""

    key_info: str
    """HKDF `info` of the media keys (Baileys' MEDIA_HKDF_KEY_MAPPING)."""

    max_bytes: int
    mimetypes: frozenset[str]
    """Sniffed types this kind accepts; empty means any (documents)."""

    default_mimetype: str


RULES: dict[MediaKind, KindRules] = {
    MediaKind.IMAGE: KindRules("image", "WhatsApp Image Keys", 16 * MB,
                               frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}), "image/jpeg"),
    MediaKind.VIDEO: KindRules("video", "WhatsApp Video Keys", 16 * MB,
                               frozenset({"video/mp4", "video/3gpp", "video/quicktime"}), "video/mp4"),
    MediaKind.AUDIO: KindRules("audio", "WhatsApp Audio Keys", 16 * MB,
                               frozenset({"audio/ogg; codecs=opus", "audio/ogg", "audio/mpeg", "audio/mp4",
                                          "audio/aac", "audio/amr", "audio/wav"}), "audio/ogg; codecs=opus"),
    MediaKind.VOICE: KindRules("audio", "WhatsApp Audio Keys", 16 * MB,
                               frozenset({"audio/ogg; codecs=opus", "audio/ogg"}), "audio/ogg; codecs=opus"),
    MediaKind.DOCUMENT: KindRules("document", "WhatsApp Document Keys", 100 * MB, frozenset(),
                                  "application/octet-stream"),
    MediaKind.STICKER: KindRules("sticker", "WhatsApp Image Keys", 500 * 1024, frozenset({"image/webp"}),
                                 "image/webp"),
}

STATIC_STICKER_MAX = 100 * 1024
"""A sticker that is not animated may be at most 100 KB (animated ones 500 KB)."""

LARGEST = max(rules.max_bytes for rules in RULES.values())

FIELD_KIND: dict[str, MediaKind] = {
    "imageMessage": MediaKind.IMAGE, "videoMessage": MediaKind.VIDEO, "audioMessage": MediaKind.AUDIO,
    "documentMessage": MediaKind.DOCUMENT, "stickerMessage": MediaKind.STICKER,
}
"""A received message's content field -> its kind (`audioMessage` with `ptt` is VOICE)."""


def rules(kind: MediaKind | str) -> KindRules:
    return RULES[MediaKind(kind)]


def human(size: int) -> str:
    """A byte count as people read limits: 16 MB, 500 KB."""
    if size >= MB:
        return f"{size / MB:g} MB"
    return f"{size / 1024:g} KB"
