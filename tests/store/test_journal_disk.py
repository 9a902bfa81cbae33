"""Disk full under the journal, on real small tmpfs mounts: a classified StoreError, nothing acknowledged lost.

Two cases: the journal itself cannot grow (the batch is refused, the partial record is cut off,
earlier batches stay visible and the journal keeps working once space is freed), and the journal
can grow but the legacy folder is full (the batch is acknowledged and readable from the overlay;
the checkpoint refuses until the files can be written, then completes).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.store.journal import Journal, Target, journal_folder
from bridge.store.layout import key_file_name
from tests.store.conftest import mounted_tmpfs


@pytest.fixture()
def make_tmpfs() -> Iterator[Callable[[str], Path]]:
    """Factory: `make_tmpfs("256k")` mounts a fresh tmpfs; all are unmounted afterwards."""
    with ExitStack() as stack:
        yield lambda size: stack.enter_context(mounted_tmpfs(size))


def _fill(path: Path) -> None:
    """Write until the file system is full (last partial page included)."""
    with open(path, "wb", buffering=0) as fh:
        for chunk in (b"\0" * 4096, b"\0"):
            try:
                while True:
                    fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def _batch(gen: int, size: int = 2000) -> dict[str, bytes]:
    return {key_file_name("session", f"{i}.0"): json.dumps({"gen": gen, "pad": "p" * size}).encode() for i in range(4)}


def _open(bridge: Path, folder: Path) -> Journal:
    folder.mkdir(parents=True, exist_ok=True)
    target = Target(folder=folder, trash_dir=bridge / "trash" / "s1")
    return Journal(journal_folder(bridge, "s1"), lambda _session: target)


def test_a_full_disk_refuses_the_batch_and_loses_nothing_acknowledged(make_tmpfs: Callable[[str], Path]) -> None:
    root = make_tmpfs("256k")
    bridge, folder = root / ".bridge", root / "s1"
    journal = _open(bridge, folder)
    journal.commit("s1", _batch(1), [])
    journal.flush()
    filler = root / "filler"
    _fill(filler)

    with pytest.raises(StoreError) as err:
        journal.commit("s1", _batch(2), [])
    message = str(err.value)
    assert err.value.code == "storage_full"
    assert "full" in message and "free space" in message and str(journal_folder(bridge, "s1")) in message
    assert journal.read("s1", folder, list(_batch(1))) == _batch(1), "the acknowledged batch is still what readers see"

    filler.unlink()
    journal.commit("s1", _batch(3), [])
    journal.close()
    reopened = _open(bridge, folder)
    assert reopened.report.torn_records == 0, "the refused record was cut off, not left torn"
    reopened.close()
    assert {n: (folder / n).read_bytes() for n in _batch(3)} == _batch(3)


def test_a_full_folder_keeps_the_batch_in_the_journal_until_the_checkpoint_can_write_it(
    make_tmpfs: Callable[[str], Path],
) -> None:
    journal_root, folder_root = make_tmpfs("1m"), make_tmpfs("64k")
    bridge, folder = journal_root / ".bridge", folder_root / "s1"
    journal = _open(bridge, folder)
    filler = folder_root / "filler"
    _fill(filler)

    journal.commit("s1", _batch(1), [])  # acknowledged: the journal had room
    assert journal.read("s1", folder, list(_batch(1))) == _batch(1)
    with pytest.raises(StoreError, match="full") as err:
        journal.checkpoint()
    assert err.value.code == "storage_full"
    assert journal.read("s1", folder, list(_batch(1))) == _batch(1), "a failed checkpoint hides nothing"

    filler.unlink()
    journal.checkpoint()
    assert {n: (folder / n).read_bytes() for n in _batch(1)} == _batch(1)
    journal.close()
