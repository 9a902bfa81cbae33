"""The decrypted-media cache: `state/media/cache/<fileSha256 hex>`, bounded, least recently served first out.

A file is only ever placed here whole and checked (`bridge.media.download`). Serving a file marks
it used (its mtime); after each new file the oldest are removed until the folder is under
`media_cache_bytes` again (the newest file always stays, even when it alone is larger). Losing the
cache loses nothing: a file is downloaded again on the next request while WhatsApp still has it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bridge.store import durable


class MediaCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        durable.make_dirs(folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def lock(self, name: str) -> asyncio.Lock:
        """One download per file at a time (a second request waits, then finds it cached)."""
        return self._locks.setdefault(name, asyncio.Lock())

    def hit(self, name: str) -> Path | None:
        path = self.path(name)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
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
            total -= size
            removed.append(name)
        return removed
