"""Power cut: what is on the *disk* when the writer dies, not what the page cache still shows.

A SIGKILL (tests/store/test_crash_safety.py) leaves the kernel's page cache intact, so every write
the dead process made is still seen. A power cut loses whatever was not flushed: a file renamed
into place but never fsynced can come back empty or missing, which is the classic way creds.json
and key files are torn. This machine has no device-mapper (`dm-flakey`), so the cut is made with
a loop device: the auth root is an ext4 file system on a loop device backed by an image file; the
loop device holds exactly the blocks ext4 has sent to it (everything flushed, plus whatever the
kernel wrote back early), while ext4's dirty pages are still in the page cache above it. Copying
the image right after killing the writer gives the disk as a power cut at that moment would leave
it; the copy is mounted (ext4 replays its own journal, as after a real cut) and checked.

What is simulated: the loss of every write not yet sent to the device, at a random moment of a
writer doing key batches and creds saves, with ext4 in its default `data=ordered` mode and a long
commit interval so nothing is flushed behind the writer's back. What is not: a device that
reorders or tears writes it already accepted, or lies about flushes (the loop device is honest).

After each cut the copy must hold every acknowledged batch once the bridge's journal is replayed,
each batch all or nothing, creds valid and not older than acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store.journal import checkpoint_session
from bridge.store.layout import key_file_name
from tests.faults.mounts import LoopRoot, loop_root, must, run, unmount
from tests.store.crash_writer import key_ids
from tests.store.test_crash_safety import AfterKill, check_folder, run_kills

IMAGE_MB = 64


@contextlib.contextmanager
def cut_disk(root: LoopRoot, scratch: Path) -> Iterator[Path]:
    """The power cut: a copy of the device as it is now, mounted at `scratch/cut` (ext4 replays
    its own journal on mount); unmounted, detached and deleted after."""
    image = scratch / "cut.img"
    must("cp", "--sparse=always", str(root.image), str(image))
    mountpoint = scratch / "cut"
    mountpoint.mkdir(exist_ok=True)
    device = must("losetup", "-f", "--show", str(image)).strip()
    try:
        must("mount", "-o", "rw", device, str(mountpoint))
        try:
            yield mountpoint
        finally:
            unmount(mountpoint)
    finally:
        run("losetup", "-d", device)
        image.unlink()


@contextlib.contextmanager
def power_cut_root(scratch: Path) -> Iterator[LoopRoot]:
    """An ext4 auth root (at `scratch/auth`) whose dirty pages are only written when something
    fsyncs: a 10-minute commit interval, so a cut image shows what the writer made durable."""
    with loop_root(scratch, size_mb=IMAGE_MB) as root:
        must("mount", "-o", "remount,commit=600", str(root.mountpoint))
        yield root


def test_a_cut_image_loses_what_was_never_flushed(tmp_path: Path) -> None:
    """The simulation itself: a file written and renamed without fsync is empty or missing on the
    cut disk, a file fsynced with its folder is there whole."""
    with power_cut_root(tmp_path) as root:
        durable_file, careless = root.mountpoint / "durable", root.mountpoint / "careless"
        careless.write_bytes(b"x" * 10_000)
        fd = os.open(durable_file, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"kept")
            os.fsync(fd)
        finally:
            os.close(fd)
        folder_fd = os.open(root.mountpoint, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)
        late = root.mountpoint / "late"
        late.write_bytes(b"y" * 10_000)
        with cut_disk(root, tmp_path) as cut:
            assert (cut / "durable").read_bytes() == b"kept"
            for name in ("careless", "late"):
                path = cut / name
                assert not path.exists() or path.stat().st_size == 0, f"{name} reached the disk unflushed"


def _check_trash(trash: Path) -> int:
    """Every key moved to the trash has a whole copy there; returns the empty copies beside them.

    A move into the trash is a rename, not flushed until the next checkpoint: when the key file was
    itself written after the last checkpoint, the cut can keep the rename but not the file's data.
    The journal still holds the record that wrote the key, so the replay writes it and moves it to
    the trash again (journal_apply.py: one more copy, never fewer). The empty copy is left (nothing
    in the bridge deletes), and the bridge never reads the trash's contents.
    """
    if not trash.exists():
        return 0
    whole: set[str] = set()
    empty: list[str] = []
    for entry in os.listdir(trash):
        name = entry.split("-", 1)[1]
        if (trash / entry).stat().st_size == 0:
            empty.append(name)
        else:
            assert json.loads((trash / entry).read_text())["id"] in name
            whole.add(name)
    missing = [name for name in empty if name not in whole]
    assert not missing, f"a trashed key survives only as an empty file: {missing}"
    return len(empty)


def _cut_and_check(root: LoopRoot, scratch: Path, seen: dict[str, int]) -> AfterKill:
    """After each kill: cut the power, count what the cut tore, replay the journal, check."""

    def after_kill(keys_acked: int | None, creds_acked: int | None, newest: int) -> None:
        with cut_disk(root, scratch) as cut:
            folder, bridge_dir = cut / "crash", cut / ".bridge"
            fixed = {key_file_name(t, i) for t, ids in key_ids().items() for i in ids}
            present = set(os.listdir(folder))
            seen["missing_files"] += len(fixed - present)
            seen["empty_files"] += sum(1 for name in present if (folder / name).stat().st_size == 0)
            report = checkpoint_session(bridge_dir, "crash", folder, bridge_dir / "trash" / "crash")
            if report is not None:
                seen["replayed"] += report.replayed
                seen["torn_records"] += report.torn_records
            trash = bridge_dir / "trash" / "crash"
            check_folder(folder, trash, keys_acked, creds_acked, newest, whole_trash=False)
            seen["empty_trash_copies"] += _check_trash(trash)
            seen["cuts"] += 1

    return after_kill


def _run(tmp_path: Path, fresh_creds: str, cuts: int, seed: int) -> dict[str, int]:
    seen = {"cuts": 0, "replayed": 0, "torn_records": 0, "missing_files": 0, "empty_files": 0, "empty_trash_copies": 0}
    scratch = tmp_path / "disk"
    scratch.mkdir()
    with power_cut_root(scratch) as root:
        # run_kills keeps its auth root at <its tmp_path>/auth: the loop mount.
        run_kills(scratch, kills=cuts, fresh_creds=fresh_creds, seed=seed,
                  after_kill=_cut_and_check(root, scratch, seen))
    print(f"power cuts: {seen}")
    assert seen["cuts"] == cuts
    assert seen["replayed"] > 0, "no cut ever left journal records to replay: the cuts came too late"
    return seen


def test_every_acknowledged_batch_survives_a_power_cut(tmp_path: Path, fresh_creds: str) -> None:
    """40 cuts at random moments of a writer doing key batches and creds saves."""
    _run(tmp_path, fresh_creds, cuts=40, seed=3)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_power_cut_soak(tmp_path: Path, fresh_creds: str) -> None:
    _run(tmp_path, fresh_creds, cuts=500, seed=11)
