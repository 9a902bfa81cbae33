"""Benchmark: `auth.set` keys/s through the PostgreSQL auth backend vs the file (journal) backend (not a test).

Same machine, same run, same workload, both through an unchanged `AuthStore` (what an IPC
`auth.set` ends in): `keys.set` of batches of 1, 10 and 100 session keys (values the exact JSON
text BufferJSON.replacer makes), then `keys.get` of the same batches; and one case where many
sessions write single keys at once (the file backend's group commit vs PostgreSQL's). Both sides
are durable before `set_keys` returns: the journal fdatasyncs its record; PostgreSQL commits with
its defaults (`fsync=on`, `synchronous_commit=on`: the WAL is flushed before the commit returns).
Each PostgreSQL commit is the fenced statement of `bridge.cluster.auth_backend` (lease check +
upsert + trash), over TCP to 127.0.0.1.

Part 2 (`--part nodes`): three real `python -m bridge` nodes on this machine (own ports and
folders, one database) against the simulator, `--tenants` linked tenants spread over them:
- API requests/s of `GET /api/v1/sessions/{id}` sent to the tenant's owner vs to a node that
  forwards it to the owner (same tenant, same concurrency, same run);
- failover: kill -9 of the node holding the most tenants, time until every one of its tenants is
  open on another node (lease TTL `--ttl`).

Part 3 (`--part retention`): `--tenants` tenants with `--keys` keys each and `--snapshots` snapshots
each (a tenth of the keys replaced between two snapshots, unregistered creds, so the keep-policy
removes the oldest beyond 10): how long one retention pass takes (plan, delete, collect objects),
and a pass with nothing to remove; plus the cost of a creds commit, which keeps the creds history
in its statement, next to a one-key commit.

Without `--dsn` a throwaway PostgreSQL is started in a temporary folder (tests/cluster/pg.py:
initdb + pg_ctl as the `postgres` user when run as root) and removed afterwards.

    python scripts/bench_cluster.py [--part auth|nodes|retention|all] [--dsn postgresql://...] [--repeat 3]
        [--value-bytes 600] [--tenants 50] [--ttl 5] [--requests 2000] [--keys 500] [--snapshots 12] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from bridge.cluster.auth_backend import PgAuthBackend  # noqa: E402
from bridge.cluster.db import open_pool  # noqa: E402
from bridge.cluster.leases import add_tenant, claim_tenant  # noqa: E402
from bridge.cluster.schema import ensure_schema  # noqa: E402
from bridge.store.auth_store import AuthStore  # noqa: E402

#: (batch size, number of batches): about 300-1000 keys per case.
CASES = ((1, 300), (10, 60), (100, 10))
#: Sessions writing single keys at once, and keys each.
CONCURRENT_SESSIONS, CONCURRENT_KEYS = 20, 30

StoreFactory = Callable[[str], AuthStore]


def _value(value_bytes: int) -> str:
    return json.dumps({"type": "Buffer", "data": base64.b64encode(os.urandom(value_bytes)).decode()})


def run_case(make: StoreFactory, session: str, batch: int, batches: int, value_bytes: int) -> tuple[float, float]:
    """keys/s of (set, get) for one store."""
    store = make(session)
    all_ids: list[list[str]] = []
    elapsed = 0.0
    for b in range(batches):
        values: dict[str, str | None] = {f"{b}.{j}": _value(value_bytes) for j in range(batch)}
        all_ids.append(list(values))
        start = time.perf_counter()
        store.set_keys({"session": values})
        elapsed += time.perf_counter() - start
    start = time.perf_counter()
    found = sum(1 for ids in all_ids for v in store.get_keys("session", ids).values() if v is not None)
    get_seconds = time.perf_counter() - start
    store.close()
    assert found == batch * batches
    return batch * batches / elapsed, batch * batches / get_seconds


def run_concurrent(make: StoreFactory, prefix: str, value_bytes: int) -> float:
    """keys/s when CONCURRENT_SESSIONS sessions each write CONCURRENT_KEYS single-key batches at once."""
    stores = [make(f"{prefix}{i}") for i in range(CONCURRENT_SESSIONS)]
    barrier = threading.Barrier(CONCURRENT_SESSIONS + 1)

    def writer(store: AuthStore) -> None:
        barrier.wait()
        for k in range(CONCURRENT_KEYS):
            store.set_keys({"session": {str(k): _value(value_bytes)}})

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for store in stores:
        store.close()
    return CONCURRENT_SESSIONS * CONCURRENT_KEYS / elapsed


def file_factory(root: Path) -> StoreFactory:
    def make(session: str) -> AuthStore:
        return AuthStore(root / session, session_id=session, bridge_dir=root / ".bridge")

    return make


def pg_factory(pool: ConnectionPool, root: Path) -> StoreFactory:
    def make(session: str) -> AuthStore:
        with pool.connection() as conn:
            add_tenant(conn, session)
            lease = claim_tenant(conn, session, "bench-node", 600.0)
        assert lease is not None, f"{session} is owned by a live node; use a fresh database"
        backend = PgAuthBackend(pool, session, node_id="bench-node", epoch=lease.epoch)
        return AuthStore(root / session, session_id=session, bridge_dir=root / ".bridge", backend=backend)

    return make


def bench(dsn: str, repeat: int, value_bytes: int) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_schema(conn)
        server = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    pool = open_pool(dsn, max_size=CONCURRENT_SESSIONS + 2, name="bench")
    run_id = f"b{os.getpid()}x{int(time.time())}"
    results: dict[str, Any] = {
        "postgres": server[0] if server else "?",
        "synchronous_commit": sync[0] if sync else "?",
        "value_bytes": value_bytes,
        "repeat": repeat,
        "cases": [],
    }
    cases: list[dict[str, object]] = []
    try:
        for batch, batches in CASES:
            rows: dict[str, list[tuple[float, float]]] = {"file": [], "pg": []}
            for r in range(repeat):
                for side in ("file", "pg"):
                    root = Path(tempfile.mkdtemp(prefix=f"bench-cluster-{side}-"))
                    try:
                        make = file_factory(root) if side == "file" else pg_factory(pool, root)
                        rows[side].append(run_case(make, f"{run_id}-{side}-{batch}-{r}", batch, batches, value_bytes))
                    finally:
                        shutil.rmtree(root, ignore_errors=True)
            file_set = statistics.median(x[0] for x in rows["file"])
            pg_set = statistics.median(x[0] for x in rows["pg"])
            file_get = statistics.median(x[1] for x in rows["file"])
            pg_get = statistics.median(x[1] for x in rows["pg"])
            cases.append({
                "case": f"batch {batch}",
                "file_set": file_set, "pg_set": pg_set, "set_ratio": pg_set / file_set,
                "file_get": file_get, "pg_get": pg_get, "get_ratio": pg_get / file_get,
            })  # fmt: skip
        conc: dict[str, list[float]] = {"file": [], "pg": []}
        for r in range(repeat):
            for side in ("file", "pg"):
                root = Path(tempfile.mkdtemp(prefix=f"bench-cluster-{side}-"))
                try:
                    make = file_factory(root) if side == "file" else pg_factory(pool, root)
                    conc[side].append(run_concurrent(make, f"{run_id}-{side}-c{r}-", value_bytes))
                finally:
                    shutil.rmtree(root, ignore_errors=True)
        file_c, pg_c = statistics.median(conc["file"]), statistics.median(conc["pg"])
        cases.append({
            "case": f"{CONCURRENT_SESSIONS} sessions x 1 key",
            "file_set": file_c, "pg_set": pg_c, "set_ratio": pg_c / file_c,
        })  # fmt: skip
    finally:
        pool.close()
    results["cases"] = cases
    return results


# ----- part 2: nodes (forwarding and failover) -------------------------------------------------
CONCURRENCY = 8


async def _requests_per_second(base: str, path: str, total: int) -> float:
    import aiohttp

    from tests.api.conftest import AUTH

    done = 0
    async with aiohttp.ClientSession(base, headers=AUTH) as http:
        async def worker() -> None:
            nonlocal done
            while done < total:
                done += 1
                async with http.get(path) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {base}{path}: {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return total / (time.perf_counter() - started)


async def bench_nodes(dsn: str, tenants: int, ttl: float, requests: int) -> dict[str, Any]:
    """Part 2 (see the module docstring): three nodes, `tenants` linked tenants."""
    from collections import Counter

    from tests.cluster.cluster_nodes import ClusterNode, link, owners
    from tests.simulator.client import SimulatorProcess

    simulator_process = SimulatorProcess()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-nodes-"))
    nodes: list[ClusterNode] = []
    try:
        simulator = simulator_process.wait_ready()
        nodes = [ClusterNode(f"bench{i}", work, simulator, dsn, ttl, BRIDGE_LOG_LEVEL="WARNING") for i in range(3)]
        await asyncio.gather(*(node.start() for node in nodes))
        ids = [f"bench-{i:03d}" for i in range(tenants)]
        linking = time.perf_counter()
        for i, sid in enumerate(ids):
            await link(nodes[i % 3], simulator, sid)
        link_s = time.perf_counter() - linking
        held = owners(dsn)
        by_name = {node.name: node for node in nodes}
        sample = ids[0]
        owner = by_name[str(held[sample])]
        other = next(node for node in nodes if node is not owner)
        path = f"/api/v1/sessions/{sample}"
        direct = await _requests_per_second(owner.base, path, requests)
        forwarded = await _requests_per_second(other.base, path, requests)

        victim_name, count = Counter(held.values()).most_common(1)[0]
        victim = by_name[str(victim_name)]
        survivor = next(node for node in nodes if node is not victim)
        moved = [sid for sid in ids if held[sid] == victim_name]
        killed = time.perf_counter()
        await victim.kill()
        await asyncio.gather(*(survivor.wait_open(sid) for sid in moved))
        failover_s = time.perf_counter() - killed
        return {
            "tenants": tenants, "nodes": 3, "lease_ttl": ttl, "link_s": link_s, "requests": requests,
            "concurrency": CONCURRENCY, "owner_rps": direct, "forwarded_rps": forwarded,
            "forwarded_ratio": forwarded / direct, "failover_tenants": count, "failover_s": failover_s,
        }  # fmt: skip
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)
        simulator_process.stop()
        shutil.rmtree(work, ignore_errors=True)


def print_nodes(result: dict[str, Any]) -> None:
    print(f"\ncluster nodes: {result['nodes']} nodes, {result['tenants']} tenants (linked in "
          f"{result['link_s']:.0f} s), lease TTL {result['lease_ttl']:.0f} s")
    print(f"GET /api/v1/sessions/{{id}} x {result['requests']} ({result['concurrency']} at once): owner "
          f"{result['owner_rps']:.0f}/s, through a non-owner {result['forwarded_rps']:.0f}/s "
          f"(ratio {result['forwarded_ratio']:.2f})")
    print(f"kill -9 of the node holding {result['failover_tenants']} of {result['tenants']} tenants: all open "
          f"elsewhere after {result['failover_s']:.1f} s")


def bench_retention(dsn: str, tenants: int, keys: int, snapshots: int, value_bytes: int) -> dict[str, Any]:
    """Part 3 (see the module docstring)."""
    from bridge.cluster.retention import RetentionPolicy, prune
    from bridge.cluster.snapshots import PgSnapshots

    name = f"bench_retention_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    db_dsn = dsn.rsplit("/", 1)[0] + f"/{name}"
    pool = open_pool(db_dsn, max_size=4)
    try:
        with pool.connection() as conn:
            ensure_schema(conn)
        creds = json.dumps({"registered": False, "pad": _value(2000)}).encode()
        backends = []
        for t in range(tenants):
            sid = f"r{t:04d}"
            with pool.connection() as conn:
                add_tenant(conn, sid)
                lease = claim_tenant(conn, sid, "bench", 3600.0)
            assert lease is not None
            backends.append(PgAuthBackend(pool, sid, node_id="bench", epoch=lease.epoch))
        snaps = PgSnapshots(pool)
        started = time.perf_counter()
        churn = max(keys // 10, 1)
        for backend in backends:
            backend.commit({"creds.json": creds, **{f"pre-key-{k}.json": _value(value_bytes).encode()
                                                    for k in range(keys)}}, [])
            for n in range(snapshots):
                if n:
                    first = keys + (n - 1) * churn
                    backend.commit({f"pre-key-{k}.json": _value(value_bytes).encode()
                                    for k in range(first, first + churn)},
                                   [f"pre-key-{k}.json" for k in range(first - keys, first - keys + churn)])
                snaps.create(backend.session_id)
        filled = time.perf_counter() - started
        with pool.connection() as conn:
            objects_before = int((conn.execute("SELECT count(*) FROM bridge_snapshot_objects").fetchone() or (0,))[0])
        started = time.perf_counter()
        report = prune(pool, RetentionPolicy())
        pass_s = time.perf_counter() - started
        started = time.perf_counter()
        idle = prune(pool, RetentionPolicy())
        idle_s = time.perf_counter() - started
        backend = backends[0]
        timings: dict[str, list[float]] = {"creds": [], "key": []}
        for n in range(200):
            for what, writes in (("creds", {"creds.json": creds.replace(b'"registered"', f'"c{n}"'.encode())}),
                                 ("key", {"pre-key-0.json": _value(value_bytes).encode()})):
                t0 = time.perf_counter()
                backend.commit(writes, [])
                timings[what].append(time.perf_counter() - t0)
        return {
            "tenants": tenants, "keys": keys, "snapshots": snapshots, "fill_s": filled,
            "objects_before": objects_before, "pass_s": pass_s, "removed": len(report.snapshots_removed),
            "objects_removed": report.objects_removed, "idle_pass_s": idle_s,
            "idle_removed": len(idle.snapshots_removed),
            "creds_commit_ms": statistics.median(timings["creds"]) * 1000,
            "key_commit_ms": statistics.median(timings["key"]) * 1000,
        }
    finally:
        pool.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def print_retention(r: dict[str, Any]) -> None:
    print(f"retention: {r['tenants']} tenants x {r['snapshots']} snapshots x {r['keys']} keys "
          f"({r['objects_before']} objects, filled in {r['fill_s']:.1f} s)")
    print(f"  pass removing {r['removed']} snapshots and {r['objects_removed']} objects: {r['pass_s']:.2f} s")
    print(f"  pass with nothing to remove ({r['idle_removed']} removed): {r['idle_pass_s']:.3f} s")
    print(f"  creds commit (with its history) {r['creds_commit_ms']:.2f} ms vs one-key commit "
          f"{r['key_commit_ms']:.2f} ms (medians of 200)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("auth", "nodes", "retention", "all"), default="all",
                        help="auth: keys/s file vs PostgreSQL; nodes: forwarding and failover; retention: a "
                        "retention pass and the creds history's cost; all: every part")
    parser.add_argument("--dsn", help="an existing PostgreSQL (default: start a throwaway one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is printed")
    parser.add_argument("--value-bytes", type=int, default=600, help="random bytes per key value (base64 in JSON)")
    parser.add_argument("--tenants", type=int, default=50, help="linked tenants for part 2")
    parser.add_argument("--ttl", type=float, default=5.0, help="lease TTL of the nodes in part 2 (s)")
    parser.add_argument("--requests", type=int, default=2000, help="API requests per measurement in part 2")
    parser.add_argument("--keys", type=int, default=500, help="keys per tenant for part 3")
    parser.add_argument("--snapshots", type=int, default=12, help="snapshots per tenant for part 3")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    server = None
    dsn = args.dsn
    if dsn is None:
        from tests.cluster.pg import start_server

        server = start_server()
        dsn = server.dsn
    results: dict[str, Any] = {}
    try:
        if args.part in ("auth", "all"):
            results = bench(dsn, args.repeat, args.value_bytes)
        if args.part in ("nodes", "all"):
            results["nodes"] = asyncio.run(bench_nodes(dsn, args.tenants, args.ttl, args.requests))
        if args.part in ("retention", "all"):
            results["retention"] = bench_retention(dsn, args.tenants, args.keys, args.snapshots, args.value_bytes)
    finally:
        if server is not None:
            server.destroy()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if "cases" in results:
        print_auth(results, args.repeat, args.value_bytes)
    if "nodes" in results:
        print_nodes(results["nodes"])
    if "retention" in results:
        print_retention(results["retention"])
    return 0


def print_auth(results: dict[str, Any], repeat: int, value_bytes: int) -> None:
    print(
        f"auth.set through AuthStore: PostgreSQL {results['postgres']} backend (synchronous_commit="
        f"{results['synchronous_commit']}) vs file journal backend; median of {repeat}, "
        f"{value_bytes}-byte values"
    )
    head = f"{'case':<24} {'file set/s':>11} {'pg set/s':>10} {'ratio':>6}"
    print(f"{head}   {'file get/s':>11} {'pg get/s':>10} {'ratio':>6}")
    for case in results["cases"]:
        line = f"{case['case']:<24} {case['file_set']:>11.0f} {case['pg_set']:>10.0f} {case['set_ratio']:>6.2f}"
        if "file_get" in case:
            line += f"   {case['file_get']:>11.0f} {case['pg_get']:>10.0f} {case['get_ratio']:>6.2f}"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
