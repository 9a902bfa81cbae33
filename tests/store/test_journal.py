"""The write-ahead journal on real files: visibility, byte identity with legacy, recovery, group commit.

Crash (SIGKILL) and disk-full tests are in test_journal_crash.py and test_journal_disk.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import PROJECT_ROOT
from bridge.errors import StoreError
from bridge.store.journal import (
    Journal,
    JournalBusyError,
    JournalCorruptError,
    Materialise,
    Target,
    checkpoint_session,
    frozen_session,
    journal_folder,
    open_session_backend,
    set_aside,
)
from bridge.store.journal_log import list_segments
from bridge.store.journal_record import HEADER_SIZE, encode_payload, frame, make_record
from bridge.store.layout import key_file_name
from tests.store.conftest import run_legacy


class Root:
    """An auth root with one session `s1`: its folder, trash and journal folder."""

    def __init__(self, base: Path) -> None:
        self.bridge = base / ".bridge"
        self.folder = base / "s1"
        self.folder.mkdir(parents=True)
        self.trash = self.bridge / "trash" / "s1"
        self.journal_dir = journal_folder(self.bridge, "s1")

    @property
    def target(self) -> Target:
        return Target(folder=self.folder, trash_dir=self.trash)

    def open(self, **kwargs: Any) -> Journal:
        target = self.target
        return Journal(self.journal_dir, lambda _session: target, **kwargs)

    def files(self) -> dict[str, bytes]:
        return {n: (self.folder / n).read_bytes() for n in sorted(os.listdir(self.folder)) if not n.startswith(".")}

    def segment_bytes(self) -> bytes:
        return b"".join(path.read_bytes() for _, path in list_segments(self.journal_dir))


@pytest.fixture()
def root(tmp_path: Path) -> Iterator[Root]:
    yield Root(tmp_path / "auth")


def _batch(gen: int, n: int = 5) -> dict[str, bytes]:
    return {key_file_name("session", f"49151{i}.0"): json.dumps({"gen": gen, "i": i}).encode() for i in range(n)}


def test_an_acknowledged_batch_is_visible_before_its_files_exist(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    backend = journal.backend("s1", root.target)
    backend.commit(_batch(1), [])
    assert root.files() == {}, "nothing is materialised while the worker is off"
    assert backend.read(list(_batch(1))) == _batch(1)
    assert backend.list_names() == sorted(_batch(1))
    journal.flush()
    assert root.files() == _batch(1)
    journal.close()


def test_a_trashed_key_reads_as_absent_at_once_and_lands_in_the_trash(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    backend = journal.backend("s1", root.target)
    name = key_file_name("pre-key", "7")
    backend.commit({name: b'{"v":1}'}, [])
    journal.flush()
    backend.commit({}, [name])
    assert backend.read([name]) == {name: None}
    assert name not in backend.list_names()
    assert (root.folder / name).exists(), "the file goes only when the worker runs"
    journal.close()
    assert not (root.folder / name).exists()
    trashed = os.listdir(root.trash)
    assert len(trashed) == 1 and trashed[0].endswith(name)
    assert (root.trash / trashed[0]).read_bytes() == b'{"v":1}'


def test_creds_can_never_be_trashed_through_the_journal(root: Root) -> None:
    journal = root.open()
    with pytest.raises(StoreError, match="creds are never deleted"):
        journal.commit("s1", {}, ["creds.json"])
    assert journal.stats.records == 0
    journal.close()


def test_a_checkpointed_folder_is_byte_identical_to_legacy_and_legacy_baileys_reads_it(
    root: Root, legacy_written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    legacy_folder, texts = legacy_written
    backend = open_session_backend(root.bridge, "s1", root.folder, root.trash)
    backend.commit({"creds.json": texts["creds"].encode()}, [])
    for key_type, values in texts["keys"].items():
        backend.commit({key_file_name(key_type, key_id): text.encode() for key_id, text in values.items()}, [])
    backend.close()
    legacy_files = {n: (legacy_folder / n).read_bytes() for n in sorted(os.listdir(legacy_folder))}
    assert root.files() == legacy_files
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"creds": texts["creds"], "keys": texts["keys"]}))
    result = run_legacy("read", str(root.folder), str(expected))
    assert result["ok"], result["mismatches"]


def test_reopening_replays_acknowledged_batches_that_never_reached_the_files(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    for gen in range(1, 4):
        journal.commit("s1", _batch(gen), [])
    journal.log.close()  # as if the process died: no materialisation, no checkpoint
    assert root.files() == {}
    again = root.open()
    assert again.report.replayed == 3
    assert root.files() == _batch(3)
    assert len(list_segments(root.journal_dir)) == 1 and root.segment_bytes() == b"", "replay ends in a checkpoint"
    again.close()


def test_replay_is_idempotent(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    name = key_file_name("pre-key", "1")
    journal.commit("s1", _batch(1) | {name: b'{"p":1}'}, [])
    journal.commit("s1", _batch(2), [name])
    journal.log.close()
    saved = root.bridge / "journal-copy"
    shutil.copytree(root.journal_dir, saved)
    root.open().close()
    first = root.files(), sorted(os.listdir(root.trash))
    shutil.rmtree(root.journal_dir)
    shutil.copytree(saved, root.journal_dir)
    root.open().close()
    assert root.files() == first[0] == _batch(2)
    assert all(n.endswith(name) for n in os.listdir(root.trash))


@pytest.mark.parametrize("cut", [5, HEADER_SIZE, -1])
def test_a_torn_tail_is_ignored_counted_and_cut_off(root: Root, cut: int) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    journal.commit("s1", _batch(1), [])
    journal.log.close()
    segment = list_segments(root.journal_dir)[-1][1]
    torn = frame(2, 1, encode_payload(make_record("s1", _batch(2), [])))[:cut]
    with open(segment, "ab") as fh:  # a writer killed mid-append leaves a prefix of a record
        fh.write(torn)
    again = root.open(materialise=Materialise.DEFERRED)
    assert (again.report.replayed, again.report.torn_records, again.report.torn_bytes) == (1, 1, len(torn))
    assert root.files() == _batch(1), "the torn batch is not even partly applied"
    assert not segment.exists() and root.segment_bytes() == b"", "replay ends in a checkpoint"
    again.commit("s1", _batch(3), [])
    again.close()
    assert root.files() == _batch(3), "appending after the cut works"


def test_a_damaged_acknowledged_record_stops_everything_until_set_aside(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    for gen in range(1, 4):
        journal.commit("s1", _batch(gen), [])
    journal.log.close()
    segment = list_segments(root.journal_dir)[-1][1]
    data = bytearray(segment.read_bytes())
    second = len(frame(1, 0, encode_payload(make_record("s1", _batch(1), []))))
    data[second + HEADER_SIZE + 3] ^= 0xFF  # bit rot inside record 2; record 3 proves 2 was acknowledged
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="record 2: checksum mismatch") as err:
        root.open()
    assert "snapshot" in str(err.value) and "set_aside" in str(err.value)
    assert root.files() == {}, "nothing was replayed, not even the valid record before the damage"
    assert segment.read_bytes() == bytes(data), "the damaged journal is kept untouched"
    moved = set_aside(root.bridge, "s1")
    assert moved is not None and (moved / segment.name).read_bytes() == bytes(data)
    root.open().close()


def test_damage_after_the_last_acknowledged_record_is_a_torn_tail(root: Root) -> None:
    """A crash during one fsync can persist a later record of the group but not an earlier one."""
    journal = root.open(materialise=Materialise.DEFERRED)
    journal.commit("s1", _batch(1), [])
    journal.log.close()
    segment = list_segments(root.journal_dir)[-1][1]
    second = frame(2, 1, encode_payload(make_record("s1", _batch(2), [])))
    third = frame(3, 1, encode_payload(make_record("s1", _batch(3), [])))  # acked_through 1: 2 was not
    with open(segment, "ab") as fh:
        fh.write(b"\0" * len(second) + third)
    again = root.open()
    assert again.report.torn_records == 2
    assert root.files() == _batch(1)
    again.close()


def test_concurrent_writers_share_fsyncs(root: Root) -> None:
    journal = root.open()
    threads, per_thread = 16, 40
    barrier = threading.Barrier(threads)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            journal.commit("s1", {key_file_name("session", f"{t}.{i}"): b'{"v":1}'}, [])

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stats = journal.stats
    print(f"group commit: {stats.records} records, {stats.fsyncs} fdatasyncs")
    assert stats.records == threads * per_thread
    assert stats.fsyncs < stats.records, "no two concurrent batches ever shared an fsync"
    journal.close()
    assert len(root.files()) == threads * per_thread


def test_a_single_writer_pays_one_fsync_per_batch(root: Root) -> None:
    journal = root.open()
    for gen in range(20):
        journal.commit("s1", _batch(gen), [])
    assert (journal.stats.records, journal.stats.fsyncs) == (20, 20)
    journal.close()


def test_checkpoint_session_replays_a_crashed_journal_and_empties_it(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    journal.commit("s1", _batch(1), [])
    journal.log.close()
    report = checkpoint_session(root.bridge, "s1", root.folder, root.trash)
    assert report is not None and report.replayed == 1
    assert root.files() == _batch(1)
    assert root.segment_bytes() == b""
    assert checkpoint_session(root.bridge, "s2", root.folder, root.trash) is None


def test_a_journal_held_by_another_process_is_refused(root: Root) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bridge.store.journal import open_session_backend\n"
        "b = open_session_backend(Path(sys.argv[1]), 's1', Path(sys.argv[2]), Path(sys.argv[3]))\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
        "b.close()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root.bridge), str(root.folder), str(root.trash)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(JournalBusyError, match="in use by another process"):
            open_session_backend(root.bridge, "s1", root.folder, root.trash)
        with pytest.raises(JournalBusyError):
            set_aside(root.bridge, "s1")
    finally:
        child.communicate("", timeout=60)
    open_session_backend(root.bridge, "s1", root.folder, root.trash).close()


def test_backends_of_one_session_in_one_process_share_the_journal(root: Root) -> None:
    first = open_session_backend(root.bridge, "s1", root.folder, root.trash)
    second = open_session_backend(root.bridge, "s1", root.folder, root.trash)
    assert first.journal is second.journal
    first.commit(_batch(1), [])
    first.close()
    assert second.read(list(_batch(1))) == _batch(1)
    second.close()
    assert root.files() == _batch(1)


def test_a_frozen_folder_stays_still_while_batches_are_still_acknowledged(root: Root) -> None:
    backend = open_session_backend(root.bridge, "s1", root.folder, root.trash)
    backend.commit(_batch(1), [])
    with frozen_session(root.bridge, "s1", root.folder, root.trash):
        assert root.files() == _batch(1)
        writer = threading.Thread(target=backend.commit, args=(_batch(2), []))
        writer.start()
        for _ in range(3000):  # the commit is acknowledged once its fdatasync returns
            if backend.read(list(_batch(2))) == _batch(2):
                break
            threading.Event().wait(0.01)
        assert backend.read(list(_batch(2))) == _batch(2), "acknowledged and readable while frozen"
        assert root.files() == _batch(1), "the folder does not move under a snapshot"
    writer.join()
    assert root.files() == _batch(2)
    backend.close()


def test_a_crashed_journal_is_replayed_before_a_frozen_read(root: Root) -> None:
    journal = root.open(materialise=Materialise.DEFERRED)
    journal.commit("s1", _batch(1), [])
    journal.log.close()
    with frozen_session(root.bridge, "s1", root.folder, root.trash) as report:
        assert report is not None and report.replayed == 1
        assert root.files() == _batch(1)


def test_the_journal_checkpoints_on_its_own_so_it_never_grows_past_its_bound(root: Root) -> None:
    journal = root.open(checkpoint_bytes=2048)
    for gen in range(40):
        journal.commit("s1", _batch(gen), [])
        assert len(root.segment_bytes()) < 2048 + 1024, "a segment outgrew the checkpoint bound"
    assert len(list_segments(root.journal_dir)) == 1
    assert root.files() == _batch(39)
    journal.close()


def test_after_a_failed_checkpoint_sync_the_records_stay_until_the_next_open_replays_them(
    root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why: Linux marks pages whose write-back failed clean, so a second sync can report success
    while the files on disk are stale. Dropping the journal then would lose acknowledged batches;
    keeping it lets the next open rewrite the files from it. (The kernel's behaviour is described,
    not simulated here: the first sync fails, the later ones succeed.)"""
    import bridge.store.journal as journal_module

    journal = root.open()
    journal.commit("s1", _batch(1), [])
    real_sync = journal_module._sync
    calls = []

    def failing_once(paths: set[Path], journal_log: Any) -> None:
        calls.append(len(paths))
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real_sync(paths, journal_log)

    monkeypatch.setattr(journal_module, "_sync", failing_once)
    with pytest.raises(StoreError):
        journal.checkpoint()
    journal.commit("s1", _batch(2), [])
    journal.checkpoint()  # succeeds, yet keeps both batches' records
    journal.close()
    assert len(calls) == 3
    assert b'"gen": 1' in root.segment_bytes() and b'"gen": 2' in root.segment_bytes()

    monkeypatch.setattr(journal_module, "_sync", real_sync)
    again = root.open()
    assert again.report.replayed == 2
    assert root.files() == _batch(2)
    assert root.segment_bytes() == b"", "a sync of the new open's own writes ends in a checkpoint"
    again.close()


def _count_file_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The legacy files the journal writes, by name, in order (journal_apply's one write call)."""
    from bridge.store import journal_apply

    written: list[str] = []
    real = journal_apply.durable.write_unsynced

    def counting(path: Path, data: bytes) -> None:
        written.append(path.name)
        real(path, data)

    monkeypatch.setattr(journal_apply.durable, "write_unsynced", counting)
    return written


def test_records_waiting_together_write_each_file_once_with_its_newest_bytes(
    root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _count_file_writes(monkeypatch)
    journal = root.open(materialise=Materialise.DEFERRED)
    for gen in range(1, 11):
        journal.commit("s1", _batch(gen, n=2), [])
    journal.flush()
    assert root.files() == _batch(10, n=2)
    assert sorted(written) == sorted(_batch(10, n=2)), "ten records of the same two files: each written once"
    journal.close()


def test_a_trash_between_two_writes_still_moves_what_the_file_held_then(
    root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _count_file_writes(monkeypatch)
    journal = root.open(materialise=Materialise.DEFERRED)
    name = key_file_name("pre-key", "9")
    journal.commit("s1", {name: b'{"v":1}'}, [])
    journal.commit("s1", {name: b'{"v":2}'}, [])
    journal.commit("s1", {}, [name])
    journal.commit("s1", {name: b'{"v":3}'}, [])
    journal.commit("s1", {name: b'{"v":4}'}, [])
    journal.flush()
    assert (root.folder / name).read_bytes() == b'{"v":4}'
    assert [(root.trash / n).read_bytes() for n in os.listdir(root.trash)] == [b'{"v":2}'], \
        "v1 was overwritten before the trash, v3 after it: only v2 was ever the file's value when trashed"
    assert written == [name, name], "v2 (before the trash) and v4"
    journal.close()


def test_a_running_sessions_files_follow_within_the_coalescing_wait(root: Root) -> None:
    journal = root.open(materialise=Materialise.BACKGROUND)
    backend = journal.backend("s1", root.target)
    for gen in range(1, 4):
        backend.commit(_batch(gen), [])
    assert backend.read(list(_batch(3))) == _batch(3), "acknowledged batches are served before their files"
    deadline = time.monotonic() + 5.0
    while root.files() != _batch(3) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert root.files() == _batch(3)
    journal.close()
