"""The decrypted-media cache: `state/media/cache/<fileSha256 hex>`, bounded, least recently served first out.

A file is only ever placed here whole and checked (`bridge.media.download`). Serving a file marks
it used (its mtime); after each new file the oldest are removed until the folder is under
`media_cache_bytes` again (the newest file always stays, even when it alone is larger). Losing the
cache loses nothing: a file is downloaded again on the next request while WhatsApp still has it; so
its files and renames are not fsynced. What a power cut may leave behind instead (an entry with its
name but not all of its bytes) is never served: an entry this process did not place itself is
hashed against its name (the fileSha256) on its first hit and removed when it does not match.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from pathlib import Path

from bridge.store import durable


class MediaCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        self._checked: set[str] = set()
        """Entries placed or verified by this process: served without hashing."""
        durable.make_dirs(folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def lock(self, name: str) -> asyncio.Lock:
        """One download per file at a time (a second request waits, then finds it cached)."""
        return self._locks.setdefault(name, asyncio.Lock())

    def placed(self, name: str) -> None:
        """`name` was just moved in whole and checked (`bridge.media.download`)."""
        self._checked.add(name)

    async def hit(self, name: str, file_sha256: bytes | None) -> Path | None:
        """The entry `name`, marked used; None when there is none, or when it was left by an earlier
        run and its bytes do not hash to `file_sha256` (then it is removed)."""
        path = self.path(name)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        if name not in self._checked and file_sha256 is not None:
            if not await asyncio.to_thread(_hashes_to, path, file_sha256):
                durable.remove_file(path)
                return None
            self._checked.add(name)
        return path

    def evict(self, keep: str) -> list[str]:
        """Remove least recently used files until the cache fits; returns the names removed."""
        files = []
        for entry in os.scandir(self.folder):
            if entry.is_file() and not entry.name.endswith(".part"):
                stat = entry.stat()
                files.append((stat.st_mtime, stat.st_size, entry.name))
        total = sum(size for _, size, _ in files)
        removed = []
        for _, size, name in sorted(files):
            if total <= self.max_bytes:
                break
            if name == keep:
                continue
            durable.remove_file(self.folder / name)
            self._locks.pop(name, None)
            self._checked.discard(name)
            total -= size
            removed.append(name)
        return removed


def _hashes_to(path: Path, file_sha256: bytes) -> bool:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return hmac.compare_digest(digest.digest(), file_sha256)
