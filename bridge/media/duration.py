"""How long a voice note or Ogg audio plays, read cheaply from the container (no decoding).

Ogg Opus: the granule position of the last page counts 48 kHz samples, minus the pre-skip from the
OpusHead. Other containers give None (WhatsApp then shows no length until played); a waveform
needs decoding and is left out.
"""

from __future__ import annotations

import struct
from pathlib import Path

TAIL = 65_536
"""The last Ogg page lies within the last 64 KiB (a page is at most 65 307 bytes)."""


def ogg_seconds(path: Path) -> int | None:
    """Whole seconds (rounded up) of an Ogg Opus file, or None when it is not one."""
    try:
        with path.open("rb") as f:
            head = f.read(128)
            pos = head.find(b"OpusHead")
            if not head.startswith(b"OggS") or pos < 0 or len(head) < pos + 12:
                return None
            pre_skip: int = struct.unpack_from("<H", head, pos + 10)[0]
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL))
            tail = f.read()
    except OSError:
        return None
    last = tail.rfind(b"OggS")
    if last < 0 or len(tail) < last + 14:
        return None
    granule: int = struct.unpack_from("<q", tail, last + 6)[0]
    if granule <= 0:
        return None
    samples = max(granule - pre_skip, 0)
    return max(1, -(-samples // 48_000))
