"""Real file systems for storage faults: an ext4 image on a loop device (to go read-only the way a
failing disk does), and a small tmpfs (to fill up). Both need root; when the kernel or the sandbox
refuses after a real try, the test is skipped with the command's own error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def must(*args: str) -> str:
    done = run(*args)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
    return done.stdout


def _try(*args: str) -> None:
    """Run a setup command; skip the test with its exact error when the machine refuses it."""
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} is not installed")
    done = run(*args)
    if done.returncode != 0:
        pytest.skip(f"`{' '.join(args)}` refused here (exit {done.returncode}): {done.stderr.strip()}")


def unmount(mountpoint: Path) -> None:
    """Unmount; lazily when something still holds it (the test failed with a process inside)."""
    if run("mountpoint", "-q", str(mountpoint)).returncode != 0:
        return
    if run("umount", str(mountpoint)).returncode != 0:
        must("umount", "-l", str(mountpoint))


class LoopRoot:
    """`mountpoint` is an ext4 file system on a loop device backed by `image`."""

    def __init__(self, image: Path, mountpoint: Path, device: str) -> None:
        self.image = image
        self.mountpoint = mountpoint
        self.device = device

    def mount(self, *, read_only: bool = False) -> None:
        options = "ro" if read_only else "rw,errors=remount-ro"
        must("mount", "-o", options, self.device, str(self.mountpoint))

    def fail_to_read_only(self) -> None:
        """What ext4 does after a write error with errors=remount-ro: every write from now on
        fails with EROFS (`mount -o remount,abort`; a plain remount,ro is refused while the
        bridge holds its lock files open for writing)."""
        must("mount", "-o", "remount,abort", str(self.mountpoint))

    def repair(self) -> None:
        """The operator's way back after the disk went read-only: unmount, fsck, mount again."""
        unmount(self.mountpoint)
        done = run("e2fsck", "-fy", str(self.image))
        assert done.returncode in (0, 1), f"e2fsck failed ({done.returncode}): {done.stdout}{done.stderr}"
        self.mount()

    def remount(self, *, read_only: bool) -> None:
        must("mount", "-o", "remount," + ("ro" if read_only else "rw"), str(self.mountpoint))


@contextlib.contextmanager
def loop_root(scratch: Path, size_mb: int = 128) -> Iterator[LoopRoot]:
    """A fresh ext4 image mounted read-write at `scratch/auth`; unmounted and detached after."""
    image = scratch / "auth.img"
    mountpoint = scratch / "auth"
    mountpoint.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as out:
        out.truncate(size_mb << 20)
    _try("mkfs.ext4", "-q", "-F", str(image))
    _try("losetup", "-f")
    done = run("losetup", "-f", "--show", str(image))
    if done.returncode != 0:
        pytest.skip(f"`losetup -f --show {image}` refused here: {done.stderr.strip()}")
    device = done.stdout.strip()
    root = LoopRoot(image, mountpoint, device)
    try:
        _try("mount", "-o", "rw,errors=remount-ro", device, str(mountpoint))
        yield root
    finally:
        unmount(mountpoint)
        run("losetup", "-d", device)


@contextlib.contextmanager
def tmpfs_root(scratch: Path, size_mb: int) -> Iterator[Path]:
    """A real tmpfs of `size_mb` MiB mounted at `scratch/auth`; unmounted after."""
    mountpoint = scratch / "auth"
    mountpoint.mkdir(parents=True, exist_ok=True)
    _try("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte (dd until ENOSPC); returns the filler."""
    filler = folder / ".filler"
    done = run("dd", "if=/dev/zero", f"of={filler}", "bs=64k")
    assert "No space left" in done.stderr, done.stderr
    with contextlib.suppress(subprocess.CalledProcessError):  # the last few blocks, if any
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k", "oflag=append", "conv=notrunc"],
                       capture_output=True, check=False)
    return filler


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
