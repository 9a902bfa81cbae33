"""Real files of each media kind, made on the spot (Pillow for images and stickers; hand-built
containers for the others: enough structure for type sniffing and Ogg duration, random payload)."""

from __future__ import annotations

import io
import os
import struct

from PIL import Image


def png(width: int = 240, height: int = 160) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 320, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, format="JPEG")
    return out.getvalue()


def webp(side: int = 128) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (20, 200, 90, 255)).save(out, format="WEBP")
    return out.getvalue()


def pdf(size: int = 50_000) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(size) + b"\n%%EOF\n"


def mp4(size: int = 60_000) -> bytes:
    return struct.pack(">I", 24) + b"ftypmp42" + b"\x00\x00\x00\x00mp42isom" + os.urandom(size)


def mp3(size: int = 40_000) -> bytes:
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + os.urandom(size)


def _ogg_page(granule: int, sequence: int, payload: bytes, header_type: int = 0) -> bytes:
    segments = [255] * (len(payload) // 255) + [len(payload) % 255]
    return (b"OggS" + bytes([0, header_type]) + struct.pack("<qIII", granule, 1234, sequence, 0)
            + bytes([len(segments)]) + bytes(segments) + payload)


def ogg_opus(seconds: int = 3, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", pre_skip, 48_000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    body = b"".join(_ogg_page(48_000 * (i + 1) + pre_skip if i < seconds - 1 else 48_000 * seconds + pre_skip,
                              2 + i, os.urandom(200), 4 if i == seconds - 1 else 0) for i in range(seconds))
    return _ogg_page(0, 0, head, 2) + _ogg_page(0, 1, tags) + body
