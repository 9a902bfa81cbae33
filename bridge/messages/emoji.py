"""Is a string one emoji? WhatsApp accepts exactly one as a reaction (or "" to remove it).

The standard library has no grapheme segmentation, so this follows the shapes of Unicode's emoji
sequences (UTS #51) closely enough for a gate: one base pictograph, optionally with a variation
selector, skin-tone modifier, keycap or tag sequence, and further bases only after a zero-width
joiner (family, profession sequences); or a flag made of exactly two regional indicators; or a
keycap (`1️⃣`). Letters, spaces, punctuation and two emoji side by side are refused.
"""

from __future__ import annotations

import unicodedata

ZWJ = "\u200d"
VS16, VS15 = "\ufe0f", "\ufe0e"
KEYCAP = "\u20e3"
MAX_CODE_POINTS = 16


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _modifier(ch: str) -> bool:
    return 0x1F3FB <= ord(ch) <= 0x1F3FF


def _tag(ch: str) -> bool:
    return 0xE0020 <= ord(ch) <= 0xE007F


def _base(ch: str) -> bool:
    """A pictograph that can stand alone as an emoji (symbols, not letters or punctuation)."""
    if _regional(ch) or _modifier(ch):
        return False
    return unicodedata.category(ch) == "So" or ord(ch) in (0x203C, 0x2049, 0x3030, 0x303D, 0x00A9, 0x00AE)


def is_single_emoji(text: str) -> bool:
    """True when `text` is exactly one emoji (see the module docstring)."""
    if not text or len(text) > MAX_CODE_POINTS:
        return False
    if len(text) == 2 and _regional(text[0]) and _regional(text[1]):
        return True
    if len(text) in (2, 3) and text[0] in "0123456789#*" and text[-1] == KEYCAP and text[1:-1] in ("", VS16):
        return True
    expect_base = True
    for ch in text:
        if expect_base:
            if not _base(ch):
                return False
            expect_base = False
        elif ch == ZWJ:
            expect_base = True
        elif not (ch in (VS16, VS15, KEYCAP) or _modifier(ch) or _tag(ch)):
            return False
    return not expect_base
