"""A real small file system that tests fill and free: a tmpfs mounted for one test (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "zz-filler"


class SmallDisk:
    """A mounted tmpfs of `size`; `fill()` takes every free byte, `free()` gives them back."""

    def __init__(self, mount_point: Path) -> None:
        self.path = mount_point

    def fill(self) -> None:
        """Write a filler file until the file system answers ENOSPC."""
        chunk = b"\0" * 4096
        with open(self.path / FILLER, "ab", buffering=0) as fh:
            with contextlib.suppress(OSError):
                while True:
                    fh.write(chunk)
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0")

    def free(self) -> None:
        """Remove the filler: the space is writable again."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path / FILLER)

    def is_full(self) -> bool:
        return os.statvfs(self.path).f_bavail == 0


@contextlib.contextmanager
def small_disk(size: str = "4m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of `size` (skips the test where mounting is not permitted); unmount after."""
    mount_point = Path(tempfile.mkdtemp(prefix="bridge-disk-"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()
