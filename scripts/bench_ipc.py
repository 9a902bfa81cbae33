"""Benchmark: auth.get / auth.set (10-key batches) over IPC vs Baileys' useMultiFileAuthState in process.

Usage: python scripts/bench_ipc.py [--rounds 500] [--batch 10] [--dir /tmp/x]

Both sides run in the same invocation on the same disk with the same values; latencies are
measured inside Node (what Baileys waits for). Every `auth.set` is one record of the session's
write-ahead journal, fdatasynced once and its legacy files renamed into place before it is
answered, while legacy `writeFile` returns as soon as the page cache has the bytes (and can lose
them on power loss). The ratios show the price of that durability plus the stdio round trip.
`auth.get ipc` is the round trip (the runtime's key cache off); `auth.get ipc+cache` reads the
keys just written with the cache on, as a running session does (node-runtime/key-cache.mjs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.config import Settings  # noqa: E402
from bridge.ipc import protocol as p  # noqa: E402
from bridge.runtime.auth_handler import AuthRequestHandler  # noqa: E402
from bridge.runtime.process import NodeProcess  # noqa: E402
from bridge.store.auth_store import AsyncAuthStore, AuthStore  # noqa: E402

CHILD = ROOT / "scripts" / "bench_ipc_child.mjs"


def summary(samples: list[float]) -> dict[str, float]:
    """Round trips per second (sequential), p50 and p99 latency in ms."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"ops_s": len(samples) / (sum(samples) / 1000.0), "p50_ms": statistics.median(ordered), "p99_ms": p99}


async def bench_ipc(work: Path, rounds: int, batch: int) -> dict[str, list[float]]:
    settings = Settings(_env_file=None, auth_root=work / "auth")
    handler = AuthRequestHandler()
    store = AuthStore(settings.auth_root / "bench", session_id="bench", bridge_dir=settings.bridge_dir)
    handler.host("bench", AsyncAuthStore(store))

    async def on_request(req: p.Req, args: msgspec.Struct) -> Any:
        return await handler(req, args)

    def on_event(evt: p.Evt, data: msgspec.Struct) -> None:
        return None

    proc = NodeProcess(settings, "bench", on_request=on_request, on_event=on_event, sessions=handler,
                       script=CHILD, extra_read=[CHILD.parent])
    await proc.start()
    try:
        result: dict[str, list[float]] = await proc.call("bench", "bench", {"n": rounds, "size": batch},
                                                          timeout=3600)
    finally:
        await proc.stop()
        store.close()
    return result


async def bench_legacy(work: Path, rounds: int, batch: int, node: str) -> dict[str, list[float]]:
    child = await asyncio.create_subprocess_exec(node, str(CHILD), "legacy", str(work / "legacy"), str(rounds),
                                                 str(batch), stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"legacy benchmark failed with exit code {child.returncode}")
    result: dict[str, list[float]] = json.loads(out)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        ipc = await bench_ipc(work, args.rounds, args.batch)
        legacy = await bench_legacy(work, args.rounds, args.batch, Settings(_env_file=None).node)
    print(f"{args.rounds} rounds of {args.batch}-key batches (pre-key pairs), latencies measured in Node")
    print(f"{'op':<10}{'path':<10}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for op in ("get", "set"):
        rows = {"ipc": summary(ipc[op]), "legacy": summary(legacy[op])}
        if op == "get":
            rows["ipc+cache"] = summary(ipc["get_cached"])
        for path, s in rows.items():
            print(f"auth.{op:<5}{path:<10}{s['ops_s']:>10.0f}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}")
        r = rows["ipc"]
        lg = rows["legacy"]
        print(f"  ratio ipc/legacy: throughput x{r['ops_s'] / lg['ops_s']:.2f}, "
              f"p50 x{r['p50_ms'] / lg['p50_ms']:.2f}, p99 x{r['p99_ms'] / lg['p99_ms']:.2f}")
        if "ipc+cache" in rows:
            print(f"  ratio ipc+cache/legacy: throughput x{rows['ipc+cache']['ops_s'] / lg['ops_s']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
