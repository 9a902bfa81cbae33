"""Power cut under the group commit's syncfs: many sessions writing at once, made durable by one
syncfs per group instead of one fdatasync per journal, lose no acknowledged batch.

The cut is the one of test_power_cut.py (read its docstring: ext4 on a loop device with a
10-minute commit interval; the image copied right after SIGKILL of the writer is what the disk
holds at a power cut at that moment). The writer (tests/store/group_crash_writer.py) runs
`SESSIONS` `AsyncAuthStore`s on one event loop, so their batches form groups of at least
`SYNCFS_MIN_JOURNALS` journals. After each cut, every session of the copy, once its journal is
replayed (`checkpoint_session`), holds one generation in all its key files (each batch all or
nothing), not older than the last batch acknowledged to it and not newer than the one in flight.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from bridge.config import PROJECT_ROOT
from bridge.store import durable, group_commit
from bridge.store.journal import checkpoint_session
from bridge.store.layout import key_file_name
from tests.faults.mounts import LoopRoot
from tests.store.group_crash_writer import KEY_IDS, session_id
from tests.store.test_power_cut import cut_disk, power_cut_root

SESSIONS = 2 * group_commit.SYNCFS_MIN_JOURNALS
LINE_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(
    not durable.syncfs_reports_errors(), reason="the group commit uses syncfs only on Linux >= 5.8"
)


class Writer:
    """One writer process and its acknowledgements, read by a thread."""

    def __init__(self, root: Path, first_gen: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store.group_crash_writer", str(root), str(SESSIONS), str(first_gen)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> str | None:
        try:
            return self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            pytest.fail("the group writer stopped answering")

    def kill_and_drain(self) -> list[str]:
        """SIGKILL, then every line it printed before it died."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        rest = []
        while (line := self.next_line()) is not None:
            rest.append(line)
        return rest


def _check_session(folder: Path, index: int, acked: int | None, in_flight: int) -> int | None:
    """The generation every key file of the session holds (None: no file, nothing acknowledged yet)."""
    names = [key_file_name(key_type, key_id) for key_type, ids in KEY_IDS.items() for key_id in ids]
    present = [name for name in names if (folder / name).exists()]
    if not present and acked is None:
        return None
    assert present, f"session {index}: acknowledged generation {acked} lost, no key file at all"
    assert present == names, f"session {index}: a batch only partly there: {sorted(set(names) - set(present))} missing"
    gens = {json.loads((folder / name).read_text())["gen"] for name in names}
    assert len(gens) == 1, f"session {index}: key files from generations {sorted(gens)}: a batch was torn"
    gen = gens.pop()
    if acked is not None:
        assert gen >= acked, f"session {index}: acknowledged generation {acked} lost (found {gen})"
    assert gen <= in_flight, f"session {index}: generation {gen} was never written"
    return gen


def _run(tmp_path: Path, cuts: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen = {"cuts": 0, "acked": 0, "syncfs_groups": 0, "replayed": 0, "torn_records": 0, "empty_files": 0}
    acked: dict[int, int] = {}
    next_gen = 1
    scratch = tmp_path / "disk"
    scratch.mkdir()
    with power_cut_root(scratch) as root:
        for _ in range(cuts):
            writer = Writer(root.mountpoint, next_gen)
            assert writer.next_line() == "ready"
            threading.Event().wait(rng.uniform(0.05, 0.4))
            lines = writer.kill_and_drain()
            newest = dict.fromkeys(range(SESSIONS), next_gen - 1)  # this writer started each at next_gen
            run_syncfs = 0
            for line in lines:
                _, index, gen, syncfs_groups = line.split()
                acked[int(index)] = newest[int(index)] = int(gen)
                run_syncfs = max(run_syncfs, int(syncfs_groups))
            seen["syncfs_groups"] += run_syncfs
            seen["acked"] += len(lines)
            in_flight = {index: gen + 1 for index, gen in newest.items()}
            _cut_and_check(root, scratch, acked, in_flight, seen)
            next_gen = max(in_flight.values()) + 1
    print(f"group power cuts: {seen}")
    assert seen["cuts"] == cuts
    assert seen["syncfs_groups"] > 0, "no group was made durable by syncfs: the test did not test it"
    assert seen["replayed"] > 0, "no cut ever left journal records to replay: the cuts came too late"
    return seen


def _cut_and_check(
    root: LoopRoot, scratch: Path, acked: dict[int, int], in_flight: dict[int, int], seen: dict[str, int]
) -> None:
    with cut_disk(root, scratch) as cut:
        bridge_dir = cut / ".bridge"
        for index in range(SESSIONS):
            sid = session_id(index)
            folder = cut / sid
            if folder.exists():
                seen["empty_files"] += sum(1 for p in folder.iterdir() if p.is_file() and p.stat().st_size == 0)
            report = checkpoint_session(bridge_dir, sid, folder, bridge_dir / "trash" / sid)
            if report is not None:
                seen["replayed"] += report.replayed
                seen["torn_records"] += report.torn_records
            _check_session(folder, index, acked.get(index), in_flight[index])
        seen["cuts"] += 1


def test_every_batch_acknowledged_by_a_group_syncfs_survives_a_power_cut(tmp_path: Path) -> None:
    _run(tmp_path, cuts=3, seed=5)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_group_power_cut_soak(tmp_path: Path) -> None:
    _run(tmp_path, cuts=60, seed=13)
