"""A real write-back failure under the group commit's syncfs (no injection): the auth root is ext4
on a loop device whose image lives on a small tmpfs. Once that tmpfs is full, the appends still
land in the page cache (ext4 has free blocks) but the loop device cannot store the blocks, so the
kernel's write-back fails with an I/O error: what a dying disk does to pages it was handed. The
group's syncfs must report it, and no batch of the group may be acknowledged or readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store import durable, group_commit
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from tests.faults.mounts import fill, must, run, tmpfs_root, unmount

ENOUGH = group_commit.SYNCFS_MIN_JOURNALS

pytestmark = pytest.mark.skipif(
    not durable.syncfs_reports_errors(), reason="the group commit uses syncfs only on Linux >= 5.8"
)


@contextlib.contextmanager
def root_on_a_disk_that_can_fill(scratch: Path) -> Iterator[tuple[Path, Path]]:
    """(auth root, folder of the device's backing store): ext4 on a loop device over a 64 MiB
    sparse image on a 24 MiB tmpfs. Filling the tmpfs makes the device fail every new block."""
    with tmpfs_root(scratch / "backing", size_mb=24) as backing:
        image = backing / "disk.img"
        with open(image, "wb") as out:
            out.truncate(64 << 20)
        must("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", str(image))
        device = must("losetup", "-f", "--show", str(image)).strip()
        mountpoint = scratch / "auth"
        mountpoint.mkdir()
        try:
            must("mount", "-o", "rw,commit=600,errors=continue", device, str(mountpoint))
            try:
                yield mountpoint, backing
            finally:
                unmount(mountpoint)
        finally:
            run("losetup", "-d", device)


async def test_a_write_back_error_reaches_every_batch_of_the_group(tmp_path: Path) -> None:
    with root_on_a_disk_that_can_fill(tmp_path) as (root, backing):
        stores = [AuthStore(root / f"s{i}", session_id=f"s{i}", bridge_dir=root / ".bridge") for i in range(ENOUGH)]
        try:
            astores = [AsyncAuthStore(s) for s in stores]
            await asyncio.gather(*(a.set_keys({"session": {"0.0": '{"before": true}'}}) for a in astores))
            for store in stores:
                store.checkpoint()  # the files of the first batch are on the device, not just in the cache
            fill(backing)
            syncfs_groups = group_commit.stats.syncfs
            payload = json.dumps({"after": "x" * 20_000})  # several pages per journal, none storable
            results = await asyncio.gather(
                *(a.set_keys({"session": {"1.0": payload}}) for a in astores), return_exceptions=True
            )
            assert group_commit.stats.syncfs == syncfs_groups + 1, "the group was not made durable by syncfs"
            for result in results:
                assert isinstance(result, StoreError), f"a batch the disk did not store was acknowledged: {result!r}"
                assert durable.is_storage_fault(result), result
            for astore in astores:
                assert await astore.get_keys("session", ["0.0", "1.0"]) == {"0.0": '{"before": true}', "1.0": None}
        finally:
            for store in stores:
                with contextlib.suppress(Exception):
                    store.close()
