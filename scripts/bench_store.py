"""Benchmark: legacy `useMultiFileAuthState` (Node) vs the bridge's durable `AuthStore` (not a test).

Same machine, same run, same workload: `keys.set` of batches of 1, 10 and 100 session keys (new
files, values the exact JSON text BufferJSON.replacer makes for a Uint8Array), then `keys.get` of
the same batches. Legacy writes without fsync (and can tear files on a crash); the bridge appends
each batch as one record to the session's write-ahead journal, fdatasyncs it once, then writes the
legacy files by temp + rename before `set_keys` returns (docs/storage.md, "Journal"). The closing
checkpoint (one syncfs) is outside the timed region.

Prints keys/s for each side and the ratio bridge/legacy (targets: >= 1.0 for 100-key batches,
>= 0.5 for 10, >= 0.3 for single keys) and journal fdatasyncs per batch; the "session set"
column is the same batches through `AsyncAuthStore`, the path a running session's `auth.set`
takes (answered after the fdatasync, the files written by the journal's worker; timed until the
last files are written). Then single keys written
by 50 sessions at once (target >= 1.0: legacy's 50 auth states in one Node process against 50
`AsyncAuthStore`s on one event loop, as a bridge's sessions write: their batches go through the
group commit, `bridge.store.group_commit`, which makes a group of 4 or more journals durable with
ONE syncfs instead of one fdatasync each; it also prints the per-run ratios, fdatasyncs and
syncfs calls per batch and batches per group; `--syncfs off` measures the fdatasync lanes alone,
as `BRIDGE_JOURNAL_SYNCFS=false` runs them), then
`creds.save`/s: legacy `saveCreds` vs `AuthStore.save_creds` of registered creds whose
`accountSyncCounter` changes every save (the bridge also keeps its creds history).

    python scripts/bench_store.py [--repeat 3] [--value-bytes 600] [--syncfs on|off] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import REGISTRY  # noqa: E402

from bridge.store import group_commit  # noqa: E402
from bridge.store.auth_store import AsyncAuthStore, AuthStore  # noqa: E402
from bridge.store.journal import JournalBackend  # noqa: E402

LEGACY = ROOT / "tests" / "store" / "node" / "bench_legacy.mjs"
#: (batch size, number of batches): about 300-1000 files per case.
CASES = ((1, 300), (10, 60), (100, 10))


def legacy_run(folder: Path, batch: int, batches: int, value_bytes: int) -> tuple[float, float]:
    """keys/s of (set, get) for legacy useMultiFileAuthState in Node."""
    out = subprocess.run(
        ["node", str(LEGACY), str(folder), str(batch), str(batches), str(value_bytes)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    return result["keys"] / result["set_seconds"], result["keys"] / result["get_seconds"]


def journal_fsyncs(target: str = "journal") -> float:
    """fdatasyncs of journals so far in this process (`bridge_store_fsyncs_total{target="journal"}`;
    `journal_syncfs`: the group commit's syncfs calls)."""
    return REGISTRY.get_sample_value("bridge_store_fsyncs_total", {"target": target}) or 0.0


def bridge_run(folder: Path, batch: int, batches: int, value_bytes: int) -> tuple[float, float, float]:
    """keys/s of (set, get) for AuthStore, values as the JSON text BufferJSON.replacer makes, and
    journal fdatasyncs per batch."""
    store = AuthStore(folder, session_id=folder.name, bridge_dir=folder.parent / ".bridge")
    all_ids: list[list[str]] = []
    elapsed = 0.0
    fsyncs = journal_fsyncs()
    for b in range(batches):
        values: dict[str, str | None] = {
            f"{b}.{j}": json.dumps({"type": "Buffer", "data": base64.b64encode(os.urandom(value_bytes)).decode()})
            for j in range(batch)
        }
        all_ids.append(list(values))
        start = time.perf_counter()
        store.set_keys({"session": values})
        elapsed += time.perf_counter() - start
    set_rate = batch * batches / elapsed
    fsyncs = (journal_fsyncs() - fsyncs) / batches
    start = time.perf_counter()
    found = 0
    for ids in all_ids:
        found += sum(1 for v in store.get_keys("session", ids).values() if v is not None)
    get_seconds = time.perf_counter() - start
    store.close()
    assert found == batch * batches
    return set_rate, batch * batches / get_seconds, fsyncs


def session_run(folder: Path, batch: int, batches: int, value_bytes: int) -> float:
    """keys/s of one session's `AsyncAuthStore`, the path a runtime's `auth.set` takes (group
    commit; answered after the fdatasync, legacy files by the journal's worker), timed until the
    last batch's files are written too, so the deferred file writes are counted."""
    store = AuthStore(folder, session_id=folder.name, bridge_dir=folder.parent / ".bridge")
    payloads: list[dict[str, str | None]] = [
        {f"{b}.{j}": _buffer_json(value_bytes) for j in range(batch)} for b in range(batches)
    ]

    async def run() -> float:
        astore = AsyncAuthStore(store)
        start = time.perf_counter()
        for values in payloads:
            await astore.set_keys({"session": values})
        if isinstance(store.backend, JournalBackend):
            await asyncio.to_thread(store.backend.journal.flush)
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    store.close()
    return batch * batches / elapsed


CONCURRENT_SESSIONS = 50
CONCURRENT_KEYS = 20


def legacy_concurrent_run(folder: Path, sessions: int, keys: int, value_bytes: int) -> float:
    """keys/s of `sessions` legacy auth states writing single keys at once (one Node process)."""
    out = subprocess.run(
        ["node", str(LEGACY), str(folder), "concurrent", str(sessions), str(keys), str(value_bytes)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    return float(result["keys"] / result["set_seconds"])


def _buffer_json(value_bytes: int) -> str:
    return json.dumps({"type": "Buffer", "data": base64.b64encode(os.urandom(value_bytes)).decode()})


def bridge_concurrent_run(
    folder: Path, sessions: int, keys: int, value_bytes: int
) -> tuple[float, float, float, float]:
    """keys/s of `sessions` AsyncAuthStores (one journal each) writing single keys at once, journal
    fdatasyncs per batch, batches per group commit (`bridge.store.group_commit`) and the group
    commit's syncfs calls per batch."""
    stores = [
        AuthStore(folder / f"s{i}", session_id=f"s{i}", bridge_dir=folder / ".bridge") for i in range(sessions)
    ]
    values = [[_buffer_json(value_bytes) for _ in range(keys)] for _ in range(sessions)]

    async def one(store: AsyncAuthStore, texts: list[str]) -> None:
        for k, text in enumerate(texts):
            await store.set_keys({"session": {f"c.{k}": text}})

    async def all_sessions() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(one(AsyncAuthStore(s), v) for s, v in zip(stores, values, strict=True)))
        return time.perf_counter() - start

    fsyncs, groups, batches = journal_fsyncs(), group_commit.stats.groups, group_commit.stats.batches
    syncfs = journal_fsyncs("journal_syncfs")
    elapsed = asyncio.run(all_sessions())
    fsyncs = (journal_fsyncs() - fsyncs) / (sessions * keys)
    syncfs = (journal_fsyncs("journal_syncfs") - syncfs) / (sessions * keys)
    per_group = (group_commit.stats.batches - batches) / max(1, group_commit.stats.groups - groups)
    for store in stores:
        store.close()
    return sessions * keys / elapsed, fsyncs, per_group, syncfs


CREDS_SAVES = 200


def creds_run(base: Path, run: int) -> tuple[float, float]:
    """creds.save/s of (legacy saveCreds, AuthStore.save_creds), each save a changed creds text."""
    out = subprocess.run(
        ["node", str(LEGACY), str(base / f"legacy-creds-{run}"), "creds", str(CREDS_SAVES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    folder = base / f"bridge-creds-{run}"
    store = AuthStore(folder, session_id=folder.name, bridge_dir=base / ".bridge")
    creds = json.loads(result["creds"])
    texts = [json.dumps(dict(creds, accountSyncCounter=i)) for i in range(CREDS_SAVES)]
    start = time.perf_counter()
    for text in texts:
        store.save_creds(text)
    elapsed = time.perf_counter() - start
    store.close()
    return result["saves"] / result["creds_seconds"], CREDS_SAVES / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark legacy useMultiFileAuthState vs AuthStore")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--value-bytes", type=int, default=600, help="raw bytes per key value")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir on /tmp)")
    parser.add_argument("--syncfs", choices=("on", "off"), default="on",
                        help="the group commit's one syncfs per group (off: one fdatasync per journal)")
    args = parser.parse_args()
    group_commit.configure(syncfs=args.syncfs == "on")

    results = []
    base = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        for batch, batches in CASES:
            runs: dict[str, list[float]] = {
                "legacy_set": [], "legacy_get": [], "bridge_set": [], "bridge_get": [], "fsyncs_per_batch": [],
                "session_set": [],
            }
            for r in range(args.repeat):
                ls, lg = legacy_run(base / f"legacy-{batch}-{r}", batch, batches, args.value_bytes)
                bs, bg, fs = bridge_run(base / f"bridge-{batch}-{r}", batch, batches, args.value_bytes)
                runs["legacy_set"].append(ls)
                runs["legacy_get"].append(lg)
                runs["bridge_set"].append(bs)
                runs["bridge_get"].append(bg)
                runs["fsyncs_per_batch"].append(fs)
                runs["session_set"].append(session_run(base / f"session-{batch}-{r}", batch, batches, args.value_bytes))
            med = {k: statistics.median(v) for k, v in runs.items()}
            results.append({"batch": batch, "batches": batches, **med})
        many = (CONCURRENT_SESSIONS, CONCURRENT_KEYS, args.value_bytes)
        concurrent_runs = [
            (
                legacy_concurrent_run(base / f"legacy-many-{r}", *many),
                bridge_concurrent_run(base / f"bridge-many-{r}", *many),
            )
            for r in range(args.repeat)
        ]
        concurrent = {
            "sessions": CONCURRENT_SESSIONS,
            "legacy_set": statistics.median(c[0] for c in concurrent_runs),
            "bridge_set": statistics.median(c[1][0] for c in concurrent_runs),
            "ratio": statistics.median(c[1][0] / c[0] for c in concurrent_runs),
            "ratios": [round(c[1][0] / c[0], 2) for c in concurrent_runs],
            "fsyncs_per_batch": statistics.median(c[1][1] for c in concurrent_runs),
            "syncfs_per_batch": statistics.median(c[1][3] for c in concurrent_runs),
            "batches_per_group": statistics.median(c[1][2] for c in concurrent_runs),
        }
        creds_runs = [creds_run(base, r) for r in range(args.repeat)]
        creds = {
            "legacy_saves": statistics.median(c[0] for c in creds_runs),
            "bridge_saves": statistics.median(c[1] for c in creds_runs),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(json.dumps({"keys": results, "concurrent": concurrent, "creds": creds}, indent=2))
        return 0
    print(f"value {args.value_bytes} raw bytes, median of {args.repeat} runs, keys/s (batches/s = keys/s / batch)")
    head = f"{'legacy':>10} {'bridge':>10} {'ratio':>6}"
    print(f"{'batch':>5} | set {head} | get {head} | fdatasyncs/batch | session set {'keys/s':>8} {'ratio':>6}")
    for row in results:
        set_ratio = row["bridge_set"] / row["legacy_set"]
        get_ratio = row["bridge_get"] / row["legacy_get"]
        print(
            f"{row['batch']:>5} |     {row['legacy_set']:>10.0f} {row['bridge_set']:>10.0f} {set_ratio:>6.2f} "
            f"|     {row['legacy_get']:>10.0f} {row['bridge_get']:>10.0f} {get_ratio:>6.2f} "
            f"| {row['fsyncs_per_batch']:>16.2f} |             {row['session_set']:>8.0f} "
            f"{row['session_set'] / row['legacy_set']:>6.2f}"
        )
    print(
        f"single keys, {CONCURRENT_SESSIONS} sessions at once ({CONCURRENT_KEYS} each): legacy "
        f"{concurrent['legacy_set']:.0f} bridge {concurrent['bridge_set']:.0f} keys/s ratio {concurrent['ratio']:.2f} "
        f"(per run: {' '.join(str(r) for r in concurrent['ratios'])}); "
        f"{concurrent['fsyncs_per_batch']:.2f} fdatasyncs/batch, {concurrent['syncfs_per_batch']:.3f} syncfs/batch "
        f"(syncfs {args.syncfs}), {concurrent['batches_per_group']:.1f} batches/group"
    )
    ratio = creds["bridge_saves"] / creds["legacy_saves"]
    print(
        f"creds.save/s ({CREDS_SAVES} changed saves): legacy {creds['legacy_saves']:.0f} "
        f"bridge {creds['bridge_saves']:.0f} ratio {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
