"""The JPEG thumbnail and dimensions of an image (Pillow), as WhatsApp shows before download.

Only images get one: video frames need a decoder (ffmpeg) the bridge does not ship, so a video goes
without a thumbnail (phones show a grey box until it is downloaded). A file Pillow cannot read gets
no thumbnail and no dimensions rather than a refusal: the sniffed type already decided it is an
image.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
from PIL import Image, UnidentifiedImageError

THUMB_SIDE = 72
"""WhatsApp's inline thumbnails are tiny (Baileys uses 32 px); 72 px stays sharp and under 5 KB."""
THUMB_QUALITY = 60
MAX_PIXELS = 50_000_000


class Preview(msgspec.Struct, frozen=True, omit_defaults=True):
    width: int | None = None
    height: int | None = None
    jpeg_thumbnail: bytes | None = None


def image_preview(path: Path) -> Preview:
    """Dimensions and a JPEG thumbnail of the image at `path`; empty when Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return Preview(width=width, height=height)
            image.seek(0)
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            thumb.save(out, format="JPEG", quality=THUMB_QUALITY)
            return Preview(width=width, height=height, jpeg_thumbnail=out.getvalue())
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return Preview()
