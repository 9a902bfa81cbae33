"""SIGKILL a journal writer mid-batch, many times: every acknowledged batch survives, none is half visible.

The writer is a child of a small fork server (this module run as `python -m
tests.store.test_journal_crash <auth_base>`), so each kill costs a fork, not an interpreter start.
Each child opens the session's journal (replaying what the previous victim left: kills also land
in the middle of a replay), then two threads commit batches concurrently so records share fsyncs:

- thread A: every key of a fixed set with generation g, a new rotating pre-key `rotg` and the
  previous one (`rot(g-1)`) trashed, then creds.json with generation g as its own batch;
- thread B: a second fixed set of keys with its own generation.

A line `a g` / `c g` / `b g` is printed only after `commit` returned (= acknowledged). Checkpoints
run every ~64 KiB so kills also hit rotation, materialisation and segment deletion.

Both materialisation modes are killed (60 times each by default, `BRIDGE_TEST_JOURNAL_KILLS`
overrides; 1000 each in the `slow` soak). After each kill the test opens the journal itself
(replay + checkpoint) and reads the legacy files directly, as legacy Baileys would: every key of a
set carries ONE generation (no batch half visible), that generation is the last acknowledged one
or the one in flight, and exactly one rotating pre-key exists.
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
from bridge.store.journal import Journal, Materialise, Target, journal_folder
from bridge.store.layout import key_file_name

LINE_TIMEOUT = 60.0
CHECKPOINT_BYTES = 64 * 1024
SET_A = {"pre-key": [str(i) for i in range(6)], "session": ["4915112345678.0", "4915112345678_1.12"],
         "sender-key": ["120363@g.us::49151::0"], "app-state-sync-key": ["AAAAAF/x"]}
SET_B = {"session": ["123456789012345_1.0", "123456789012345_1.7"], "lid-mapping": ["4915112345678"],
         "device-list": ["4915112345678"], "tctoken": ["__index"]}


def _paths(base: Path) -> tuple[Path, Target]:
    bridge = base / ".bridge"
    return journal_folder(bridge, "crash"), Target(folder=base / "crash", trash_dir=bridge / "trash" / "crash")


def _open(base: Path, materialise: Materialise = Materialise.INLINE) -> Journal:
    folder, target = _paths(base)
    target.folder.mkdir(parents=True, exist_ok=True)
    return Journal(folder, lambda _session: target, checkpoint_bytes=CHECKPOINT_BYTES, materialise=materialise)


def _value(group: str, gen: int, name: str, rng: random.Random) -> bytes:
    """Sizes vary, so a torn file could never parse as a complete one."""
    return json.dumps({"group": group, "gen": gen, "name": name, "pad": "x" * rng.randrange(0, 3000)}).encode()


def _names(keys: dict[str, list[str]]) -> list[str]:
    return [key_file_name(t, i) for t, ids in keys.items() for i in ids]


# ----- the writer (runs in the fork server's children) ---------------------------------------------
def _say(line: str) -> None:
    os.write(1, f"{line}\n".encode())


def _writer_a(journal: Journal, first: int, parent: int) -> None:
    rng = random.Random(first)
    for gen in range(first, first + 1_000_000):
        if os.getppid() != parent:  # the fork server is gone: never outlive the test
            return
        writes = {name: _value("a", gen, name, rng) for name in _names(SET_A)}
        rot = key_file_name("pre-key", f"rot{gen}")
        writes[rot] = _value("a", gen, rot, rng)
        journal.commit("crash", writes, [key_file_name("pre-key", f"rot{gen - 1}")])
        _say(f"a {gen}")
        journal.commit("crash", {"creds.json": _value("c", gen, "creds.json", rng)}, [])
        _say(f"c {gen}")


def _writer_b(journal: Journal, first: int, stop: threading.Event) -> None:
    rng = random.Random(-first)
    for gen in range(first, first + 1_000_000):
        if stop.is_set():
            return
        journal.commit("crash", {name: _value("b", gen, name, rng) for name in _names(SET_B)}, [])
        _say(f"b {gen}")


def _child(base: Path, materialise: Materialise, first_a: int, first_b: int, parent: int) -> None:
    journal = _open(base, materialise)
    stop = threading.Event()
    b = threading.Thread(target=_writer_b, args=(journal, first_b, stop), daemon=True)
    b.start()
    try:
        _writer_a(journal, first_a, parent)
    finally:
        stop.set()


def serve(base: Path, materialise: Materialise) -> None:
    """Fork server: `go <first_a> <first_b>` forks a writer, prints `pid <pid>`, then `dead <pid> <status>`."""
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3 or parts[0] != "go":
            continue
        server = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child is killed
            code = 0
            try:
                _child(base, materialise, int(parts[1]), int(parts[2]), server)
            except BaseException as exc:
                os.write(2, f"writer error: {exc!r}\n".encode())
                code = 1
            os._exit(code)
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"dead {pid} {status}")


# ----- the test side ------------------------------------------------------------------------------
class WriterServer:
    def __init__(self, base: Path, materialise: Materialise) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store.test_journal_crash", str(base), materialise.value],
            cwd=PROJECT_ROOT,
            env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.strip())

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail("journal crash writer stopped answering")

    def go(self, first_a: int, first_b: int) -> tuple[int, list[str]]:
        """Start a writer; returns its pid and the acknowledgements it printed before the server said `pid`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {first_a} {first_b}\n")
        self.proc.stdin.flush()
        early = []
        while not (line := self.next_line()).startswith("pid "):
            early.append(line)
        return int(line.split()[1]), early

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=LINE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _one_generation(folder: Path, names: list[str], group: str) -> int:
    gens = set()
    for name in names:
        value = json.loads((folder / name).read_bytes())
        assert (value["group"], value["name"]) == (group, name)
        gens.add(value["gen"])
    assert len(gens) == 1, f"batch half visible: set {group} holds generations {sorted(gens)}"
    return gens.pop()


def _check(base: Path, acked: dict[str, int]) -> dict[str, int]:
    """Open (replay + checkpoint), then read the files as a legacy reader would. Returns current gens."""
    journal = _open(base)
    journal.close()
    _, target = _paths(base)
    found = {}
    if acked["a"] == 0 and not (target.folder / _names(SET_A)[0]).exists():
        found["a"] = 0
    else:
        found["a"] = _one_generation(target.folder, _names(SET_A), "a")
        rotating = [n for n in os.listdir(target.folder) if n.startswith("pre-key-rot")]
        assert rotating == [key_file_name("pre-key", f"rot{found['a']}")], rotating
    if acked["b"] == 0 and not (target.folder / _names(SET_B)[0]).exists():
        found["b"] = 0
    else:
        found["b"] = _one_generation(target.folder, _names(SET_B), "b")
    creds = target.folder / "creds.json"
    found["c"] = json.loads(creds.read_bytes())["gen"] if creds.exists() else 0
    for kind, gen in found.items():
        assert gen >= acked[kind], f"acknowledged {kind} batch {acked[kind]} lost (found {gen})"
    for kind in ("a", "b"):
        assert found[kind] <= acked[kind] + 1, f"{kind}: generation {found[kind]} was never even started"
    assert found["c"] <= found["a"], "creds of a generation whose keys were never acknowledged"
    if target.trash_dir.exists():
        for name in os.listdir(target.trash_dir):
            json.loads((target.trash_dir / name).read_bytes())
    return found


def run_kills(base: Path, kills: int, seed: int, materialise: Materialise) -> dict[str, int]:
    rng = random.Random(seed)
    acked = {"a": 0, "b": 0, "c": 0}
    current = dict(acked)
    totals = {"acks": 0, "torn": 0}
    server = WriterServer(base, materialise)
    try:
        for _ in range(kills):
            pid, early = server.go(current["a"] + 1, current["b"] + 1)
            if rng.random() < 0.5 and not early:
                # Half the kills land once the writer is past start-up (replay), however slow the machine.
                early.append(server.next_line())
                if early[-1].startswith("dead"):
                    pytest.fail(f"the writer died on its own before it was killed: {early[-1]}")
            threading.Event().wait(0.0 if rng.random() < 0.1 else rng.uniform(0.0, 0.06))
            os.kill(pid, signal.SIGKILL)
            while True:
                line = early.pop(0) if early else server.next_line()
                kind, value = line.split()[:2]
                if kind == "dead":
                    assert int(value) == pid and os.WIFSIGNALED(int(line.split()[2])), f"writer exited: {line}"
                    break
                acked[kind] = max(acked[kind], int(value))
                totals["acks"] += 1
            current = _check(base, acked)
            acked = dict(current)  # what is on disk now is what the next child builds on
    finally:
        server.close()
    assert totals["acks"] >= kills // 3, "too few batches were acknowledged: the kills only hit start-up"
    return totals


@pytest.mark.parametrize("materialise", [Materialise.INLINE, Materialise.BACKGROUND], ids=lambda m: m.value)
def test_sigkill_mid_batch_never_loses_or_splits_a_batch(tmp_path: Path, materialise: Materialise) -> None:
    kills = int(os.environ.get("BRIDGE_TEST_JOURNAL_KILLS", "60"))
    totals = run_kills(tmp_path / "auth", kills, seed=11, materialise=materialise)
    print(f"{materialise.value}: {totals['acks']} acknowledged batches across {kills} kills")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("materialise", [Materialise.INLINE, Materialise.BACKGROUND], ids=lambda m: m.value)
def test_sigkill_soak(tmp_path: Path, materialise: Materialise) -> None:
    run_kills(tmp_path / "auth", 1000, seed=12, materialise=materialise)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Materialise(sys.argv[2]))
