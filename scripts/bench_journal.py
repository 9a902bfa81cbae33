"""Benchmark: the write-ahead journal vs legacy `useMultiFileAuthState` vs today's AuthStore (not a test).

Same machine, same run, same workload as scripts/bench_store.py: `keys.set` of batches of 1, 10
and 100 new `session` keys, values the exact JSON text BufferJSON.replacer makes for a Uint8Array.
Each case runs for one session and for 10 sessions writing at once:

- legacy: real Baileys 7.0.0-rc14 `useMultiFileAuthState` in Node (tests/store/node/bench_legacy.mjs,
  the baseline bench_store.py uses), no fsync at all; 10 sessions = 10 Node processes at once
  (the default runtime runs one session per process), rate = all keys / the slowest one's time;
- authstore: today's `AuthStore.set_keys` (temp + fsync + rename per file, one folder fsync);
- journal (per session): one journal per session, the chosen design;
- journal (per root): one journal shared by all sessions (measured to choose between the two).

Journal times include writing the legacy files (`flush()` at the end, inside the timed region), so
the comparison with legacy is "files written"; the acknowledgement alone is faster. The final
checkpoint (one syncfs) is timed separately. Prints keys/s, the ratio to legacy, and fdatasyncs
per batch for the journal.

    python scripts/bench_journal.py [--repeat 3] [--value-bytes 600] [--json] [--quick]
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
from bridge.store.journal import Journal, Target  # noqa: E402
from bridge.store.layout import key_file_name  # noqa: E402

LEGACY = ROOT / "tests" / "store" / "node" / "bench_legacy.mjs"
#: (batch size, batches per session)
CASES = ((1, 300), (10, 60), (100, 10))
QUICK_CASES = ((1, 5), (10, 3), (100, 2))
SESSIONS = (1, 10)
PATHS = ("legacy", "authstore", "journal_session", "journal_root")


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
    base: Path, sessions: int, batch: int, batches: int, value_bytes: int, *, shared: bool
) -> dict[str, float]:
    bridge = base / ".bridge"
    targets = {}
    for s in range(sessions):
        folder = base / f"journal-{s}"
        folder.mkdir(parents=True)
        targets[f"j{s}"] = Target(folder=folder, trash_dir=bridge / "trash" / f"j{s}")
    if shared:
        root = Journal(bridge / "journal" / "_root", lambda sid: targets[sid])
        journals = {sid: root for sid in targets}
    else:
        journals = {sid: Journal(bridge / "journal" / sid, lambda found, t=t: t) for sid, t in targets.items()}
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
        return journal_run(folder, sessions, batch, batches, value_bytes, shared=path == "journal_root")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the journal vs legacy useMultiFileAuthState and AuthStore")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--value-bytes", type=int, default=600, help="raw bytes per key value")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--quick", action="store_true", help="a few batches per case (smoke test)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir on /tmp)")
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        for batch, batches in QUICK_CASES if args.quick else CASES:
            for sessions in SESSIONS:
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
    print(f"value {args.value_bytes} raw bytes, median of {args.repeat} runs; keys/s and ratio = path/legacy")
    print(f"{'batch':>5} {'sess':>4} | {'legacy':>8} | {'authstore':>9} {'ratio':>5} | "
          f"{'journal/session':>15} {'ratio':>5} {'fs/b':>5} | {'journal/root':>12} {'ratio':>5} {'fs/b':>5}")
    for row in results:
        js, jr, st = row["journal_session"], row["journal_root"], row["authstore"]
        print(
            f"{row['batch']:>5} {row['sessions']:>4} | {row['legacy']['keys_per_s']:>8.0f} | "
            f"{st['keys_per_s']:>9.0f} {st['ratio']:>5.2f} | "
            f"{js['keys_per_s']:>15.0f} {js['ratio']:>5.2f} {js['fsyncs_per_batch']:>5.2f} | "
            f"{jr['keys_per_s']:>12.0f} {jr['ratio']:>5.2f} {jr['fsyncs_per_batch']:>5.2f}"
        )
    print("fs/b = fdatasyncs per batch; journal rates include writing the legacy files (flush), not the checkpoint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
