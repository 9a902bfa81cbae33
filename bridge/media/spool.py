"""Where media bytes wait on disk, under the state folder (never the auth root).

- `incoming/`: a file as the client sent it (upload, base64, URL), while Python checks it. Python
  only; removed as soon as it is encrypted.
- `spool/`: the encrypted blob of an outgoing message. The Node runtime may read this folder
  (`--allow-fs-read`, never write) to upload the blob; Python removes the file once the send is
  answered (acknowledged or failed).
- `cache/`: decrypted downloads (`bridge.media.cache`).

Every byte goes through `bridge.store.durable`. These files are not credentials: losing them loses
a pending upload or a cached download, never a login; a restart sweeps `incoming/` and `spool/`. So
they are scratch files (`durable.open_scratch`): no fsync of the file or its folder, which on a
shared disk waits for every other writer's journal commit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.config import Settings
from bridge.eventlog.location import state_dir
from bridge.media.errors import MediaTooLarge
from bridge.media.kinds import human
from bridge.store import durable


def media_dir(settings: Settings) -> Path:
    return state_dir(settings) / "media"


def spool_dir(settings: Settings) -> Path:
    """The one folder the Node runtime may read media from."""
    return media_dir(settings) / "spool"


def readable_spool(settings: Settings) -> Path:
    """`spool_dir`, created if missing: Node's permission model grants a path only if it exists when
    the runtime starts (a folder made later stays unreadable)."""
    folder = spool_dir(settings)
    durable.make_dirs(folder)
    return folder


class Spool:
    def __init__(self, settings: Settings) -> None:
        self.incoming = media_dir(settings) / "incoming"
        self.outgoing = spool_dir(settings)
        durable.make_dir_set([self.incoming, self.outgoing])

    def sweep(self) -> int:
        """Remove what a previous run left behind (nothing in here outlives a send)."""
        removed = 0
        for folder in (self.incoming, self.outgoing):
            for entry in folder.iterdir():
                durable.remove_file(entry)
                removed += 1
        return removed

    def incoming_path(self) -> Path:
        return self.incoming / f"{secrets.token_hex(12)}.part"

    def outgoing_path(self) -> Path:
        return self.outgoing / f"{secrets.token_hex(12)}.enc"

    @staticmethod
    def remove(path: Path) -> None:
        durable.remove_file(path)


async def write_stream(chunks: AsyncIterator[bytes], path: Path, limit: int, what: str) -> int:
    """Write `chunks` to a new file at `path`, refusing (and removing it) past `limit` bytes."""
    size = 0
    with durable.store_errors(path, "spooling media into"):
        fd = durable.open_scratch(path)
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise MediaTooLarge(f"{what} is larger than {human(limit)}, WhatsApp's limit; send a smaller file")
            with durable.store_errors(path, "spooling media into"):
                durable.append_bytes(fd, chunk)
    except BaseException:
        os.close(fd)
        durable.remove_file(path)
        raise
    os.close(fd)
    return size


def write_bytes(data: bytes, path: Path) -> None:
    """Raises `StoreError` (507 when the disk is full; the session keeps running)."""
    with durable.store_errors(path, "spooling media into"):
        fd = durable.open_scratch(path)
        try:
            durable.append_bytes(fd, data)
        except BaseException:
            os.close(fd)
            durable.remove_file(path)
            raise
        os.close(fd)
