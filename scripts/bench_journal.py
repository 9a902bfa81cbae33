"""Benchmark: the write-ahead journal vs legacy `useMultiFileAuthState` vs today's AuthStore (not a test).

Same machine, same run, same workload as scripts/bench_store.py: `keys.set` of batches of 1, 10
and 100 new `session` keys, values the exact JSON text BufferJSON.replacer makes for a Uint8Array.
Each case runs for one session and for 10 sessions writing at once:

- legacy: real Baileys 7.0.0-rc14 `useMultiFileAuthState` in Node (tests/store/node/bench_legacy.mjs,
  the baseline bench_store.py uses), no fsync at all; 10 sessions = 10 Node processes at once
  (the default runtime runs one session per process), rate = all keys / the slowest one's time;
- authstore: today's `AuthStore.set_keys` (temp + fsync + rename per file, one folder fsync);
- journal: one journal per session, files written inline before `commit` returns (the default);
- journal_bg: the same with the files written by a background worker after the acknowledgement;
- journal_root: one journal shared by all sessions, inline (measured to choose per session/root).

Journal times include writing the legacy files (for journal_bg a `flush()` at the end, inside the
timed region), so every ratio compares "files written"; journal_bg also reports the rate of
acknowledgements alone (`ack`). The final checkpoint (one syncfs) is timed separately. Prints
keys/s, the ratio to legacy, and fdatasyncs per batch for the journal.

    python scripts/bench_journal.py [--repeat 3] [--value-bytes 600] [--json] [--quick] [--sessions 1,10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.store.auth_store import AuthStore  # noqa: E402
from bridge.store.journal import Journal, Materialise, Target  # noqa: E402
from bridge.store.layout import key_file_name  # noqa: E402

LEGACY = ROOT / "tests" / "store" / "node" / "bench_legacy.mjs"
#: (batch size, batches per session)
CASES = ((1, 300), (10, 60), (100, 10))
QUICK_CASES = ((1, 5), (10, 3), (100, 2))
PATHS = ("legacy", "authstore", "journal", "journal_bg", "journal_root")


def _value(value_bytes: int) -> str:
    return json.dumps({"type": "Buffer", "data": base64.b64encode(os.urandom(value_bytes)).decode()})


def _batches(session: int, batch: int, batches: int, value_bytes: int) -> list[dict[str, str]]:
    return [{f"{session}.{b}.{j}": _value(value_bytes) for j in range(batch)} for b in range(batches)]


def legacy_run(base: Path, sessions: int, batch: int, batches: int, value_bytes: int) -> dict[str, float]:
    """keys/s of `sessions` concurrent legacy Node processes (rate = all keys / slowest set time)."""
    procs = [
        subprocess.Popen(
            ["node", str(LEGACY), str(base / f"legacy-{s}"), str(batch), str(batches), str(value_bytes)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for s in range(sessions)
    ]
    seconds = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"bench_legacy.mjs failed with {proc.returncode}")
        seconds.append(json.loads(out)["set_seconds"])
    return {"keys_per_s": sessions * batch * batches / max(seconds)}


def _concurrently(work: list[Callable[[], None]]) -> float:
    """Run each callable in its own thread, all released at once; seconds until the last returns."""
    barrier = threading.Barrier(len(work) + 1)
    errors: list[BaseException] = []

    def run(fn: Callable[[], None]) -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in work]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def authstore_run(base: Path, sessions: int, batch: int, batches: int, value_bytes: int) -> dict[str, float]:
    stores = [
        AuthStore(base / f"store-{s}", session_id=f"store-{s}", bridge_dir=base / ".bridge") for s in range(sessions)
    ]
    work = [_batches(s, batch, batches, value_bytes) for s in range(sessions)]

    def writer(s: int) -> Callable[[], None]:
        return lambda: [stores[s].set_keys({"session": values}) for values in work[s]] and None

    elapsed = _concurrently([writer(s) for s in range(sessions)])
    return {"keys_per_s": sessions * batch * batches / elapsed}


def journal_run(
    base: Path, sessions: int, batch: int, batches: int, value_bytes: int, *, shared: bool, materialise: Materialise
) -> dict[str, float]:
    bridge = base / ".bridge"
    targets = {}
    for s in range(sessions):
        folder = base / f"journal-{s}"
        folder.mkdir(parents=True)
        targets[f"j{s}"] = Target(folder=folder, trash_dir=bridge / "trash" / f"j{s}")
    if shared:
        root = Journal(bridge / "journal" / "_root", lambda sid: targets[sid], materialise=materialise)
        journals = {sid: root for sid in targets}
    else:
        journals = {
            sid: Journal(bridge / "journal" / sid, lambda found, t=t: t, materialise=materialise)
            for sid, t in targets.items()
        }
    distinct = list({id(j): j for j in journals.values()}.values())
    work = {
        sid: [
            {key_file_name("session", key_id): text.encode() for key_id, text in values.items()}
            for values in _batches(s, batch, batches, value_bytes)
        ]
        for s, sid in enumerate(targets)
    }

    def writer(sid: str) -> Callable[[], None]:
        def run() -> None:
            journal = journals[sid]
            for writes in work[sid]:
                journal.commit(sid, writes, [])

        return run

    def flush_all() -> None:
        for journal in distinct:
            journal.flush()

    start = time.perf_counter()
    acked = _concurrently([writer(sid) for sid in targets])
    flush_all()
    elapsed = time.perf_counter() - start
    records = sum(j.stats.records for j in distinct)
    fsyncs = sum(j.stats.fsyncs for j in distinct)
    start = time.perf_counter()
    for journal in distinct:
        journal.close()
    checkpoint = time.perf_counter() - start
    for sid, target in targets.items():
        expected = sum(len(w) for w in work[sid])
        found = len([n for n in os.listdir(target.folder) if not n.startswith(".")])
        if found != expected:
            raise SystemExit(f"{sid}: {found} files after the checkpoint, expected {expected}")
    keys = sessions * batch * batches
    return {
        "keys_per_s": keys / elapsed,
        "ack_keys_per_s": keys / acked,
        "fsyncs_per_batch": fsyncs / records,
        "checkpoint_ms": checkpoint * 1000,
    }


def run_case(base: Path, path: str, sessions: int, batch: int, batches: int, value_bytes: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"{path}-", dir=base))
    try:
        if path == "legacy":
            return legacy_run(folder, sessions, batch, batches, value_bytes)
        if path == "authstore":
            return authstore_run(folder, sessions, batch, batches, value_bytes)
        mode = Materialise.BACKGROUND if path == "journal_bg" else Materialise.INLINE
        shared = path == "journal_root"
        return journal_run(folder, sessions, batch, batches, value_bytes, shared=shared, materialise=mode)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the journal vs legacy useMultiFileAuthState and AuthStore")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--value-bytes", type=int, default=600, help="raw bytes per key value")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--quick", action="store_true", help="a few batches per case (smoke test)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir on /tmp)")
    parser.add_argument("--sessions", default="1,10", help="comma-separated numbers of concurrent sessions")
    args = parser.parse_args()
    session_counts = [int(n) for n in args.sessions.split(",")]

    results: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        for batch, batches in QUICK_CASES if args.quick else CASES:
            for sessions in session_counts:
                runs: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
                for _ in range(args.repeat):
                    for path in PATHS:  # interleaved, so load changes hit every path alike
                        runs[path].append(run_case(base, path, sessions, batch, batches, args.value_bytes))
                row: dict[str, Any] = {"batch": batch, "sessions": sessions, "batches_per_session": batches}
                for path, measured in runs.items():
                    row[path] = {k: statistics.median(m[k] for m in measured) for k in measured[0]}
                    row[path]["ratio"] = row[path]["keys_per_s"] / row["legacy"]["keys_per_s"]
                results.append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"value {args.value_bytes} raw bytes, median of {args.repeat} runs; keys/s (ratio = path / legacy)")
    print(
        f"{'batch':>5} {'sess':>4} | {'legacy':>6} | {'authstore':>12} | {'journal':>12} {'fs/b':>4} | "
        f"{'journal_bg':>12} {'ack':>12} | {'journal_root':>12} {'fs/b':>4}"
    )

    def cell(entry: dict[str, float], key: str = "keys_per_s") -> str:
        return f"{entry[key]:>6.0f} {entry[key] / legacy:>5.2f}"

    for row in results:
        legacy = row["legacy"]["keys_per_s"]
        print(
            f"{row['batch']:>5} {row['sessions']:>4} | {legacy:>6.0f} | {cell(row['authstore'])} | "
            f"{cell(row['journal'])} {row['journal']['fsyncs_per_batch']:>4.2f} | "
            f"{cell(row['journal_bg'])} {cell(row['journal_bg'], 'ack_keys_per_s')} | "
            f"{cell(row['journal_root'])} {row['journal_root']['fsyncs_per_batch']:>4.2f}"
        )
    print("fs/b = fdatasyncs per batch; ack = acknowledgements alone (files written later by the worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
