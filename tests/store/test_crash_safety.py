"""Crash safety: a writer killed with SIGKILL at random moments never leaves a torn file.

A fork server (tests/store/crash_writer.py) starts a writer child that loops over key batches and
creds saves; we kill it with SIGKILL after a random delay, hundreds of times, on the same folder.
After every kill: creds.json exists and is valid, every key file parses and holds either the last
acknowledged generation or one that was in flight (old or new, never something else), every file
in the trash parses, and opening the store again removes the dead writer's temp files. The folder
is checked after `checkpoint_session` (the journal replayed into it), as a stop or snapshot sees it.
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
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from bridge.config import PROJECT_ROOT
from bridge.store.auth_store import AuthStore
from bridge.store.creds import validate_creds_text
from bridge.store.durable import TEMP_PREFIX
from bridge.store.journal import checkpoint_session
from bridge.store.layout import key_file_name
from tests.store.crash_writer import ROTATING, key_ids

LINE_TIMEOUT = 60.0


class WriterServer:
    """The fork server as a child of the test, with its stdout read by a thread."""

    def __init__(self, folder: Path, bridge_dir: Path, creds_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store.crash_writer", str(folder), str(bridge_dir), str(creds_file)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.strip())

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail("crash writer stopped answering")

    def start_child(self, first_gen: int) -> tuple[int, list[str]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {first_gen}\n")
        self.proc.stdin.flush()
        early: list[str] = []
        while True:
            line = self.next_line()
            if line.startswith("pid "):
                return int(line.split()[1]), early
            early.append(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=LINE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_folder(
    folder: Path, trash: Path, keys_acked: int | None, creds_acked: int | None, newest: int, *, whole_trash: bool = True
) -> None:
    """Creds valid and not older than acknowledged; every key file whole, from an acknowledged or
    in-flight generation; rotating pre-keys parse, and (`whole_trash`) every trash file."""
    creds_path = folder / "creds.json"
    assert creds_path.exists(), "creds.json vanished"
    creds = validate_creds_text(creds_path.read_text(), source=str(creds_path))
    counter = creds["accountSyncCounter"]
    assert counter <= newest
    if creds_acked is not None:
        assert counter >= creds_acked, f"acknowledged creds {creds_acked} lost (found {counter})"
    for key_type, ids in key_ids().items():
        for key_id in ids:
            path = folder / key_file_name(key_type, key_id)
            if keys_acked is None and not path.exists():
                continue
            value = json.loads(path.read_text())
            assert (value["type"], value["id"]) == (key_type, key_id)
            assert value["gen"] <= newest
            if keys_acked is not None:
                assert value["gen"] >= keys_acked, f"{path.name}: acknowledged gen {keys_acked} lost"
    rotating = [n for n in os.listdir(folder) if n.startswith(f"pre-key-{ROTATING}")]
    for name in rotating:
        assert json.loads((folder / name).read_text())["id"] == name[len("pre-key-") : -len(".json")]
    if whole_trash and trash.exists():
        for name in os.listdir(trash):
            if not name.startswith("."):
                json.loads((trash / name).read_text())


#: Called after each kill with (keys_acked, creds_acked, newest generation that may be on disk).
AfterKill = Callable[[int | None, int | None, int], None]


def run_kills(tmp_path: Path, kills: int, fresh_creds: str, seed: int, after_kill: AfterKill | None = None) -> None:
    """SIGKILL the writer `kills` times; after each, check the folder as a stop would see it, or
    hand the acknowledgements to `after_kill` (the power-cut test checks a copy of the disk)."""
    rng = random.Random(seed)
    root = tmp_path / "auth"
    folder, bridge_dir = root / "crash", root / ".bridge"
    base = json.loads(fresh_creds)
    base["me"] = {"id": "4915112345678:3@s.whatsapp.net", "name": "Crash"}
    base["registered"] = True
    creds_file = tmp_path / "base-creds.json"
    creds_file.write_text(json.dumps(base))
    first_store = AuthStore(folder, session_id="crash", bridge_dir=bridge_dir)
    first_store.save_creds(json.dumps(base))
    first_store.close()  # releases the session's journal for the writer children

    server = WriterServer(folder, bridge_dir, creds_file)
    keys_acked: int | None = None
    creds_acked: int | None = None
    next_gen = 1
    acked_rounds = 0
    try:
        for _ in range(kills):
            first = next_gen
            pid, lines = server.start_child(first)
            # Sometimes kill at once (mid-start), mostly somewhere inside the write loop.
            delay = 0.0 if rng.random() < 0.1 else rng.uniform(0.0, 0.08)
            threading.Event().wait(delay)
            os.kill(pid, signal.SIGKILL)
            newest = first
            while True:
                line = lines.pop(0) if lines else server.next_line()
                kind, value = line.split()[:2]
                if kind == "dead":
                    assert int(value) == pid
                    assert os.WIFSIGNALED(int(line.split()[2])), f"writer exited on its own: {line}"
                    break
                gen = int(value)
                if kind == "keys":
                    keys_acked, newest = gen, gen + 1
                    acked_rounds += 1
                elif kind == "creds":
                    creds_acked = gen
            newest = max(newest, (keys_acked or 0) + 1)
            if after_kill is not None:
                after_kill(keys_acked, creds_acked, newest)
            else:
                # What a stop, snapshot or legacy reader gets: the journal replayed into the folder.
                checkpoint_session(bridge_dir, "crash", folder, bridge_dir / "trash" / "crash")
                check_folder(folder, bridge_dir / "trash" / "crash", keys_acked, creds_acked, newest)
            next_gen = newest + 1
    finally:
        server.close()
    assert acked_rounds > 0, "no batch ever completed: the kills only tested start-up"
    AuthStore(folder, session_id="crash", bridge_dir=bridge_dir).close()  # sweeps the dead writers' temp files
    assert not [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    for backup in (bridge_dir / "creds-backups" / "crash").glob("*.json"):
        validate_creds_text(backup.read_text(), source=str(backup))


def test_sigkill_at_random_moments_never_tears_a_file(tmp_path: Path, fresh_creds: str) -> None:
    run_kills(tmp_path, kills=int(os.environ.get("BRIDGE_TEST_KILLS", "200")), fresh_creds=fresh_creds, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_soak(tmp_path: Path, fresh_creds: str) -> None:
    run_kills(tmp_path, kills=2000, fresh_creds=fresh_creds, seed=2)
