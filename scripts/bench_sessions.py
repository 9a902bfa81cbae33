"""Benchmark: memory per tenant by `BRIDGE_SESSIONS_PER_RUNTIME`, beside plain Baileys, and how
long the tenants of a crashed pooled runtime take to come back.

For each T (tenants) and K (sessions per runtime): link T tenants through a SessionManager (real
Node runtimes, real Baileys 7.0.0-rc14, the simulator), then measure RSS and USS of every runtime
process (psutil, after all are open) and of this Python process. Then, for K > 1, SIGKILL the
runtime hosting the first tenant and time until all K of its tenants are open again; each must
come back with the same identity (`me`), without a QR. In the same run, T plain Baileys sockets in
one Node process (scripts/bench_sessions_baileys.mjs) linked to the same simulator: their RSS, and
the ratio bridge/plain per tenant.

    python scripts/bench_sessions.py [--tenants 10,50] [--per-runtime 1,10,25,50] [--quick]

K = 1 (one process per tenant) only runs for T <= --max-isolated (default 10): at about 110 MiB
per tenant, 50 would take 5.5 GiB of a machine shared with other work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bridge.config import Settings  # noqa: E402
from bridge.events import EventBus  # noqa: E402
from bridge.sessions.manager import SessionManager  # noqa: E402
from bridge.sessions.state import SessionState  # noqa: E402
from bridge.store.snapshots import Snapshots  # noqa: E402
from tests.simulator.client import SimulatorClient, node_binary, start_simulator  # noqa: E402

BAILEYS = ROOT / "scripts" / "bench_sessions_baileys.mjs"
MiB = 2**20
LINK_AT_ONCE = 10
NOT_OPEN = set(SessionState) - {SessionState.OPEN}
_phones = iter(range(10**7))


def _phone() -> str:
    return f"1555{os.getpid() % 1000:03d}{next(_phones):05d}"


def _memory(pids: set[int]) -> tuple[int, int]:
    rss = uss = 0
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        rss += info.rss
        uss += info.uss
    return rss, uss


async def _link(manager: SessionManager, sim: SimulatorClient, sid: str, gate: asyncio.Semaphore) -> None:
    async with gate:
        phone = _phone()
        await sim.create_account(phone)
        await manager.create(sid, "pairing_code", phone)
        code = await manager.request_pairing_code(sid, phone)
        await sim.enter_pairing_code(phone, code)
        await manager.wait_for_state(sid, {"open"}, 300)


async def bridge_case(sim: SimulatorClient, work: Path, tenants: int, per_runtime: int) -> dict[str, Any]:
    root = work / f"bridge-{tenants}-{per_runtime}"
    settings = Settings(_env_file=None, auth_root=root / "auth", state_dir=root / "state",  # type: ignore[call-arg]
                        monitor_enabled=False, wa_url=sim.ws_url, wa_trust_root=sim.root_pub,
                        sessions_per_runtime=per_runtime, restart_backoff_initial=0.2)
    settings.auth_root.mkdir(parents=True)
    manager = SessionManager(settings, EventBus(100_000), Snapshots(settings.auth_root))
    python_before = psutil.Process().memory_info().rss
    ids = [f"t{i:04d}" for i in range(tenants)]
    try:
        gate = asyncio.Semaphore(LINK_AT_ONCE)
        started = time.perf_counter()
        await asyncio.gather(*(_link(manager, sim, sid, gate) for sid in ids))
        linked = time.perf_counter() - started
        await asyncio.sleep(2)  # let the post-open writes and pre-key uploads finish
        pids = {pid for pid in (manager.get(sid).pid for sid in ids) if pid}
        rss, uss = _memory(pids)
        row: dict[str, Any] = {
            "tenants": tenants, "per_runtime": per_runtime, "processes": len(pids), "linked_s": linked,
            "runtime_rss_mib": rss / MiB, "runtime_uss_mib": uss / MiB,
            "python_growth_mib": (psutil.Process().memory_info().rss - python_before) / MiB,
        }
        if per_runtime > 1:
            row.update(await _crash(manager, ids))
        return row
    finally:
        await manager.shutdown()
        shutil.rmtree(root, ignore_errors=True)


async def _crash(manager: SessionManager, ids: list[str]) -> dict[str, Any]:
    victim = manager.get(ids[0])
    sharing = [sid for sid in ids if manager.get(sid).runtime == victim.runtime]
    before = {sid: manager.get(sid).me for sid in sharing}
    assert victim.pid is not None
    killed = time.perf_counter()
    os.kill(victim.pid, signal.SIGKILL)
    await asyncio.gather(*(manager.wait_for_state(sid, NOT_OPEN, 60) for sid in sharing))
    await asyncio.gather(*(manager.wait_for_state(sid, {"open"}, 300) for sid in sharing))
    back = time.perf_counter() - killed
    after = {sid: manager.get(sid).me for sid in sharing}
    if after != before:
        raise RuntimeError(f"identities changed after the runtime crash: {before} -> {after}")
    return {"crash_k": len(sharing), "crash_back_s": back}


async def plain_case(sim: SimulatorClient, work: Path, tenants: int) -> dict[str, Any]:
    folder = work / f"plain-{tenants}"
    folder.mkdir()
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(BAILEYS), sim.ws_url, sim.root_pub, str(folder), str(tenants), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        started = time.perf_counter()
        opened: set[int] = set()
        scans: list[asyncio.Task[Any]] = []
        while len(opened) < tenants:
            raw = await asyncio.wait_for(proc.stdout.readline(), 300)
            if not raw:
                raise RuntimeError("plain Baileys exited")
            if not raw.startswith(b"{"):
                continue
            line = json.loads(raw)
            if "qr" in line:
                scans.append(asyncio.ensure_future(sim.scan(line["qr"], _phone())))
            elif line.get("open"):
                opened.add(line["i"])
        await asyncio.gather(*scans)
        linked = time.perf_counter() - started
        await asyncio.sleep(2)
        rss, uss = _memory({proc.pid})
        return {"tenants": tenants, "linked_s": linked, "rss_mib": rss / MiB, "uss_mib": uss / MiB}
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    tenant_counts = [3] if args.quick else [int(x) for x in args.tenants.split(",")]
    pools = [1, 3] if args.quick else [int(x) for x in args.per_runtime.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    rows: list[dict[str, Any]] = []
    plain: dict[int, dict[str, Any]] = {}
    try:
        async with start_simulator() as sim:
            for tenants in tenant_counts:
                plain[tenants] = await plain_case(sim, work, tenants)
                for k in pools:
                    if k > tenants or (k == 1 and tenants > args.max_isolated):
                        continue
                    rows.append(await bridge_case(sim, work, tenants, k))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'T':>4} {'K':>4} {'procs':>5} {'linked':>7} {'RSS/tenant':>11} {'USS/tenant':>11} "
          f"{'plain RSS/t':>11} {'ratio':>6} {'crash: K back in':>17}")
    for row in rows:
        t = row["tenants"]
        per = row["runtime_rss_mib"] / t
        plain_per = plain[t]["rss_mib"] / t
        crash = f"{row['crash_k']} in {row['crash_back_s']:.1f}s" if "crash_k" in row else "-"
        print(f"{t:>4} {row['per_runtime']:>4} {row['processes']:>5} {row['linked_s']:>6.1f}s "
              f"{per:>8.1f} MiB {row['runtime_uss_mib'] / t:>8.1f} MiB {plain_per:>8.1f} MiB "
              f"{per / plain_per:>6.1f} {crash:>17}")
    if args.json:
        print(json.dumps({"bridge": rows, "plain": list(plain.values())}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="10,50")
    parser.add_argument("--per-runtime", default="1,10,25,50")
    parser.add_argument("--max-isolated", type=int, default=10, help="largest T run with one runtime per tenant")
    parser.add_argument("--quick", action="store_true", help="3 tenants, K 1 and 3 (a smoke run)")
    parser.add_argument("--json", action="store_true")
    asyncio.run(main(parser.parse_args()))
