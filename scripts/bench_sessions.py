"""Benchmark: memory per tenant by `BRIDGE_SESSIONS_PER_RUNTIME`, beside plain Baileys, and how
long the tenants of a crashed pooled runtime take to come back.

For each T (tenants) and K (sessions per runtime): link T tenants through a SessionManager (real
Node runtimes, real Baileys 7.0.0-rc14, the simulator), then measure RSS and USS of every runtime
process (psutil, after all are open) and of this Python process. Then, for K > 1, SIGKILL the
runtime hosting the first tenant and time until all K of its tenants are open again; each must
come back with the same identity (`me`), without a QR. In the same run, T plain Baileys sockets in
one Node process (scripts/bench_sessions_baileys.mjs) linked to the same simulator: their RSS, and
the ratio bridge/plain per tenant. Then messages per second across `--senders` (10) tenants while
the rest idle: each sends `--send` (50) texts to one contact with `--in-flight` (10) unacked, all
at once, through `SessionManager.send_text` (done at the server's ack), and the same from the first
10 plain sockets (done at the server's ack); a first message from each sender is not counted, and
both start once linking's aftermath is over (the processes under 0.2 core).

    python scripts/bench_sessions.py [--tenants 10,50] [--per-runtime 1,10,25,50] [--quick]

K = 1 (one process per tenant) only runs for T <= --max-isolated (default 10): at about 110 MiB
per tenant, 50 would take 5.5 GiB of a machine shared with other work.

    python scripts/bench_sessions.py --restart 500,1000 [--plain 100] [--settle 20] [--idle 60]

The scale run: link tenants cumulatively up to each level, then start a full `python -m bridge run`
over them with every default (monitor on, paced start-up ramp, 25 per runtime) and measure what an
operator sees: time until /readyz and until every tenant is open, idle CPU of the bridge, of its
Node runtimes and of the simulator, the memory of each, the bridge's open descriptors, /metrics
size and time; plain Baileys (`--plain N` sockets) first, in the same run, as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

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


CONTACT = "15559990001"
"""The contact the sending tenants write to (made once per simulator)."""


class SendLoad(msgspec.Struct, frozen=True):
    """Messages per second across `senders` tenants while the rest idle: each sends `count` texts
    to the contact with `in_flight` at most unacked, all senders at once (0 count: not measured)."""

    senders: int = 10
    count: int = 50
    in_flight: int = 10

    @property
    def to(self) -> str:
        return f"{CONTACT}@s.whatsapp.net"


async def _calm(pids: set[int], limit: float = 180.0) -> float:
    """Wait until `pids` together use under a fifth of a core over 3 s (linking leaves pre-key
    uploads and ~800 file writes per tenant behind it), at most `limit`; returns the seconds waited."""
    procs = [psutil.Process(pid) for pid in pids]
    begun = time.perf_counter()
    while time.perf_counter() - begun < limit:
        before = sum(_cpu(p) for p in procs)
        await asyncio.sleep(3)
        if (sum(_cpu(p) for p in procs) - before) / 3 < 0.2:
            break
    return time.perf_counter() - begun


async def _bridge_sends(manager: SessionManager, ids: list[str], load: SendLoad) -> dict[str, Any]:
    """`load` through `SessionManager.send_text` (returns once the server acked); a first message
    from each sender beforehand (its Signal session with the contact) is not counted."""
    senders = ids[: load.senders]
    calm = await _calm({os.getpid()} | {pid for pid in (manager.get(sid).pid for sid in ids) if pid})

    async def send_from(sid: str, count: int, in_flight: int) -> None:
        left = iter(range(count))

        async def worker() -> None:
            for i in left:
                await manager.send_text(sid, load.to, f"bench {i}")

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    await asyncio.gather(*(send_from(sid, 1, 1) for sid in senders))
    started = time.perf_counter()
    await asyncio.gather(*(send_from(sid, load.count, load.in_flight) for sid in senders))
    seconds = time.perf_counter() - started
    sent = len(senders) * load.count
    return {"senders": len(senders), "sent": sent, "send_msgs_per_s": sent / seconds, "calm_s": calm}


async def bridge_case(
    sim: SimulatorClient, work: Path, tenants: int, per_runtime: int, load: SendLoad | None = None
) -> dict[str, Any]:
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
        if load is not None and load.count > 0:
            row.update(await _bridge_sends(manager, ids, load))
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


async def _plain_sends(proc: asyncio.subprocess.Process, load: SendLoad) -> dict[str, Any]:
    """The same load from the first `load.senders` plain sockets (same warm-up, same count)."""
    assert proc.stdin is not None and proc.stdout is not None
    result: dict[str, Any] = {}
    calm = await _calm({proc.pid})
    for count, in_flight in ((1, 1), (load.count, load.in_flight)):
        command = {"senders": load.senders, "to": load.to, "count": count, "concurrency": in_flight}
        proc.stdin.write(json.dumps(command).encode() + b"\n")
        await proc.stdin.drain()
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), 300)
            if not raw:
                raise RuntimeError("plain Baileys exited while sending")
            if raw.startswith(b"{") and "done" in (line := json.loads(raw)):
                result = {"sent": line["done"], "send_msgs_per_s": line["done"] / line["seconds"], "calm_s": calm}
                break
    return result


async def plain_case(sim: SimulatorClient, work: Path, tenants: int, load: SendLoad | None = None) -> dict[str, Any]:
    folder = work / f"plain-{tenants}"
    folder.mkdir()
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(BAILEYS), sim.ws_url, sim.root_pub, str(folder), str(tenants), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        started = time.perf_counter()
        latest: dict[int, str] = {}
        opened: dict[int, asyncio.Event] = {}
        scans: dict[int, asyncio.Task[Any]] = {}
        gate = asyncio.Semaphore(LINK_AT_ONCE)

        async def link(i: int) -> None:
            """Scan socket i's newest QR, 10 links at a time as for the bridge (100 at once made
            the one Node process run out of descriptors writing ~800 pre-key files each)."""
            async with gate:
                await sim.scan(latest[i], _phone())
                await opened[i].wait()

        while len([e for e in opened.values() if e.is_set()]) < tenants:
            raw = await asyncio.wait_for(proc.stdout.readline(), 300)
            if not raw:
                raise RuntimeError("plain Baileys exited")
            if not raw.startswith(b"{"):
                continue
            line = json.loads(raw)
            opened.setdefault(line["i"], asyncio.Event())
            if "qr" in line:
                latest[line["i"]] = line["qr"]
                scans.setdefault(line["i"], asyncio.ensure_future(link(line["i"])))
            elif line.get("open"):
                opened[line["i"]].set()
        await asyncio.gather(*scans.values())
        linked = time.perf_counter() - started
        await asyncio.sleep(2)
        rss, uss = _memory({proc.pid})
        row = {"tenants": tenants, "linked_s": linked, "rss_mib": rss / MiB, "uss_mib": uss / MiB}
        if load is not None and load.count > 0:
            row.update(await _plain_sends(proc, load))
        return row
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


API_KEY = "bench-sessions"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sum_memory(procs: list[psutil.Process]) -> tuple[float, float]:
    rss = uss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        uss += info.uss
    return rss / MiB, uss / MiB


async def link_tenants(sim: SimulatorClient, root: Path, ids: list[str]) -> float:
    """Link `ids` through a SessionManager with the default pooling and the monitor off, snapshot
    each (what the monitor of the bridge that linked them would have done, so the restart measured
    next is a restart, not a first adoption of T folders), then shut it down: the tenants stay
    wanted running, so the next bridge over `root` starts them all."""
    settings = Settings(_env_file=None, auth_root=root / "auth", state_dir=root / "state",  # type: ignore[call-arg]
                        monitor_enabled=False, wa_url=sim.ws_url, wa_trust_root=sim.root_pub)
    settings.auth_root.mkdir(parents=True, exist_ok=True)
    manager = SessionManager(settings, EventBus(100_000), Snapshots(settings.auth_root))
    try:
        gate = asyncio.Semaphore(LINK_AT_ONCE)
        started = time.perf_counter()
        await asyncio.gather(*(_link(manager, sim, sid, gate) for sid in ids))
        linked = time.perf_counter() - started
        await asyncio.sleep(2)
        gate = asyncio.Semaphore(4)

        async def snapshot(sid: str) -> None:
            async with gate:
                await asyncio.to_thread(manager.snapshots.create, sid, "bench-linked")

        await asyncio.gather(*(snapshot(sid) for sid in ids))
        return linked
    finally:
        await manager.shutdown()


async def _poll(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        async with http.get(url) as response:
            body = await response.json(content_type=None) if response.status == 200 else None
            return response.status, body
    except (aiohttp.ClientError, ValueError):
        return 0, None


async def _quiet(proc: psutil.Process, settle: float, limit: float = 600.0) -> float:
    """Wait `settle` seconds, then until `proc` uses under a tenth of a core over 5 s (the
    monitor's snapshot after a restart, `monitor-settled`, is owed once for every tenant), at most
    `limit`; returns the seconds waited."""
    begun = time.perf_counter()
    await asyncio.sleep(settle)
    while time.perf_counter() - begun < limit:
        before = _cpu(proc)
        await asyncio.sleep(5)
        if (_cpu(proc) - before) / 5 < 0.1:
            break
    return time.perf_counter() - begun


async def restart_case(
    sim: SimulatorClient, sim_proc: psutil.Process, root: Path, tenants: int, settle: float, idle: float,
) -> dict[str, Any]:
    """Start `python -m bridge run` (every default: monitor on, paced ramp, 25 per runtime) over a
    root holding `tenants` linked, wanted-running tenants; time until /readyz and until all open,
    then idle CPU (bridge, its Node runtimes, the simulator) over `idle` seconds after `settle`,
    memory of each, /metrics size and time. SIGTERM at the end, timed until the bridge exited
    (`stop_s`); no process is left behind."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRIDGE_AUTH_ROOT": str(root / "auth"),
           "BRIDGE_STATE_DIR": str(root / "state"), "BRIDGE_WA_URL": sim.ws_url, "BRIDGE_WA_TRUST_ROOT": sim.root_pub,
           "BRIDGE_PORT": str(port), "BRIDGE_API_KEYS": API_KEY, "BRIDGE_LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{port}"
    with (root / f"bridge-{tenants}.log").open("wb") as log_file:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "run", cwd=root, env=env, stdout=log_file, stderr=log_file,
            start_new_session=True)
    bridge = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    row: dict[str, Any] = {"tenants": tenants}
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as http:
            while "all_open_s" not in row or "ready_s" not in row:
                if proc.returncode is not None:
                    raise RuntimeError(f"the bridge exited ({proc.returncode}); see {root}/bridge-{tenants}.log")
                if time.perf_counter() - started > 1800:
                    raise TimeoutError(f"not all {tenants} open within 30 min: {row}")
                for child in bridge.children(recursive=True):
                    seen.setdefault(child.pid, child)
                _, health = await _poll(http, base + "/healthz")
                if health is not None:
                    row["open_now"] = health["sessions"].get("open", 0)
                    if row["open_now"] >= tenants and "all_open_s" not in row:
                        row["all_open_s"] = time.perf_counter() - started
                if "ready_s" not in row and (await _poll(http, base + "/readyz"))[0] == 200:
                    row["ready_s"] = time.perf_counter() - started
                await asyncio.sleep(0.5)
            print(f"{tenants} open in {row['all_open_s']:.1f} s (bridge pid {proc.pid}); settling",
                  file=sys.stderr, flush=True)
            row["settled_s"] = await _quiet(bridge, settle)
            nodes = bridge.children(recursive=True)
            for child in nodes:
                seen.setdefault(child.pid, child)
            groups = {"bridge": [bridge], "node": nodes, "simulator": [sim_proc]}
            before = {name: sum(_cpu(p) for p in procs) for name, procs in groups.items()}
            measured = time.perf_counter()
            await asyncio.sleep(idle)
            elapsed = time.perf_counter() - measured
            for name, procs in groups.items():
                row[f"{name}_cpu_cores"] = (sum(_cpu(p) for p in procs) - before[name]) / elapsed
                row[f"{name}_rss_mib"], row[f"{name}_uss_mib"] = _sum_memory(procs)
            row["runtimes"] = len(nodes)
            row["bridge_fds"] = bridge.num_fds()
            row["simulator_fds"] = sim_proc.num_fds()
            _, health = await _poll(http, base + "/healthz")
            row["open_after_idle"] = health["sessions"].get("open", 0) if health else None
            took: list[float] = []
            size = 0
            for _ in range(5):
                begun = time.perf_counter()
                async with http.get(base + "/metrics") as response:
                    size = len(await response.read())
                took.append(time.perf_counter() - begun)
            row["metrics_bytes"] = size
            row["metrics_ms"] = statistics.median(took) * 1000
    finally:
        if proc.returncode is None:
            stopping = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 300)
                row["stop_s"] = time.perf_counter() - stopping
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        left = [p for p in seen.values() if _alive(p)]
        for child in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        row["left_behind"] = len(left)
    return row


async def scale_run(args: argparse.Namespace) -> None:
    """Restart levels: link up to each T (cumulative), restart a full bridge over them, measure."""
    levels = [int(x) for x in args.restart.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rows: list[dict[str, Any]] = []
    plain: dict[str, Any] | None = None
    try:
        async with start_simulator() as sim:
            sim_proc = next(p for p in psutil.Process().children() if "simulator" in " ".join(p.cmdline()))
            if args.plain:
                plain = await plain_case(sim, work, args.plain)
                print(json.dumps({"plain": plain}), file=sys.stderr, flush=True)
            sim_base = sim_proc.memory_info().rss / MiB
            root = work / "scale"
            linked = 0
            for tenants in levels:
                ids = [f"t{i:04d}" for i in range(linked, tenants)]
                link_s = await link_tenants(sim, root, ids)
                linked = tenants
                print(f"linked {len(ids)} more ({tenants} in all) in {link_s:.1f} s", file=sys.stderr, flush=True)
                row = await restart_case(sim, sim_proc, root, tenants, args.settle, args.idle)
                row.update(link_more_s=link_s, simulator_base_rss_mib=sim_base)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'T':>5} {'ready':>6} {'all open':>8} {'bridge':>14} {'node':>14} {'sim':>13} {'idle CPU cores':>24} "
          f"{'/metrics':>14} {'fds':>5}")
    for row in rows:
        t = row["tenants"]
        print(f"{t:>5} {row['ready_s']:>5.0f}s {row['all_open_s']:>7.0f}s "
              f"{row['bridge_rss_mib']:>5.0f} ({row['bridge_rss_mib'] / t:4.2f}/t) "
              f"{row['node_rss_mib']:>5.0f} ({row['node_rss_mib'] / t:4.1f}/t) "
              f"{row['simulator_rss_mib']:>5.0f} ({(row['simulator_rss_mib'] - sim_base) / t:4.2f}/t) "
              f"br {row['bridge_cpu_cores']:.3f} node {row['node_cpu_cores']:.3f} sim {row['simulator_cpu_cores']:.3f} "
              f"{row['metrics_bytes'] / 1024:>6.0f} KiB {row['metrics_ms']:>3.0f}ms {row['bridge_fds']:>5}")
    if plain is not None:
        per = plain["rss_mib"] / plain["tenants"]
        print(f"plain Baileys, {plain['tenants']} sockets in one process: {per:.1f} MiB RSS per socket"
              f", linked in {plain['linked_s']:.0f} s")
    if args.json:
        print(json.dumps({"restart": rows, "plain": plain}))


async def registry_run(args: argparse.Namespace) -> None:
    """Registry writes per restart: link T tenants, then start a SessionManager over them with the
    default paced start-up (monitor off) and count, from `start_all` until every tenant is open,
    the registry's changes (each was one whole-file write before issue 19) and its writes."""
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    rows = []
    try:
        async with start_simulator() as sim:
            root = work / "registry"
            linked = 0
            for tenants in (int(x) for x in args.registry_restart.split(",")):
                await link_tenants(sim, root, [f"t{i:04d}" for i in range(linked, tenants)])
                linked = tenants
                settings = Settings(_env_file=None, auth_root=root / "auth",  # type: ignore[call-arg]
                                    state_dir=root / "state", monitor_enabled=False, wa_url=sim.ws_url,
                                    wa_trust_root=sim.root_pub)
                manager = SessionManager(settings, EventBus(100_000), Snapshots(settings.auth_root))
                try:
                    changes, writes = manager.registry.changes, manager.registry.writes
                    started = time.perf_counter()
                    ids = await manager.start_all()
                    await asyncio.gather(*(manager.wait_for_state(sid, {"open"}, 600) for sid in ids))
                    rows.append({"tenants": tenants, "opened": len(ids), "open_s": time.perf_counter() - started,
                                 "changes": manager.registry.changes - changes,
                                 "writes": manager.registry.writes - writes})
                finally:
                    await manager.shutdown()
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'T':>5} {'all open':>8} {'registry changes':>17} {'writes':>7} {'writes/tenant':>14}")
    for row in rows:
        print(f"{row['tenants']:>5} {row['open_s']:>7.1f}s {row['changes']:>17} {row['writes']:>7} "
              f"{row['writes'] / row['tenants']:>14.2f}")


def _distinct_account(template: Path, folder: Path, index: int) -> None:
    """A copy of a legacy folder made its own account: another identity key and phone number."""
    shutil.copytree(template, folder)
    path = folder / "creds.json"
    creds = json.loads(path.read_text())
    creds["signedIdentityKey"]["public"]["data"] = base64.b64encode(os.urandom(33)).decode()
    device = creds["me"]["id"].split(":", 1)[1]
    creds["me"]["id"] = f"1555{index:07d}:{device}"
    path.write_text(json.dumps(creds))


async def monitor_scan_case(work: Path, tenants: int, idle_scans: int) -> dict[str, Any]:
    """The monitor's periodic scan over `tenants` idle linked folders: CPU and full looks per scan,
    a full scan (every folder looked at, what every scan did before scan_plan.py) against the
    scan as it is now (only changed folders plus the sweep slice)."""
    from bridge.monitor.scan_plan import RACY_SECONDS
    from bridge.monitor.watcher import AuthWatcher
    from tests.monitor.helpers import make_legacy_folder

    root = work / f"monitor-{tenants}"
    make_legacy_folder(work / f"tpl-{tenants}", 5)
    for i in range(tenants):
        _distinct_account(work / f"tpl-{tenants}", root / f"m{i:04d}", i)
    settings = Settings(auth_root=root, monitor_settle_seconds=3600.0)
    watcher = AuthWatcher(settings, EventBus(), Snapshots(root))

    async def timed(full: bool) -> tuple[float, int]:
        looks, cpu = watcher.looks, time.process_time()
        found = await watcher.scan(full=full)
        assert found == [], found
        return (time.process_time() - cpu) * 1000, watcher.looks - looks

    first = await timed(True)  # first sight: a look and a first snapshot each
    await asyncio.sleep(RACY_SECONDS + 0.5)
    await timed(False)  # the snapshot folders changed: one more look each
    full = [await timed(True) for _ in range(3)]
    idle = [await timed(False) for _ in range(idle_scans)]
    for timer in watcher._timers.values():
        timer.cancel()
    return {
        "tenants": tenants, "first_scan_ms": round(first[0]),
        "full_scan_ms": round(statistics.median(c for c, _ in full), 1),
        "full_scan_looks": full[0][1],
        "idle_scan_ms": round(statistics.median(c for c, _ in idle), 1),
        "idle_scan_looks": max(n for _, n in idle),
        "sweep_s": watcher.plan.full_sweep, "interval_s": settings.monitor_scan_interval,
    }


async def monitor_run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    rows = []
    try:
        for tenants in (int(x) for x in args.monitor_scan.split(",")):
            rows.append(await monitor_scan_case(work, tenants, args.idle_scans))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'T':>5} {'full scan: CPU':>15} {'looks':>6} {'scan now: CPU':>14} {'looks':>6} {'ratio':>6} "
          f"{'cores at 1 scan/15 s':>21}")
    for row in rows:
        before, now = (row[k] / 1000 / row["interval_s"] for k in ("full_scan_ms", "idle_scan_ms"))
        print(f"{row['tenants']:>5} {row['full_scan_ms']:>12.1f} ms {row['full_scan_looks']:>6} "
              f"{row['idle_scan_ms']:>11.1f} ms {row['idle_scan_looks']:>6} "
              f"{row['idle_scan_ms'] / row['full_scan_ms']:>6.3f} {before:>9.4f} -> {now:.4f}")


def _sends(row: dict[str, Any], plain: dict[str, Any]) -> str:
    if "send_msgs_per_s" not in row or "send_msgs_per_s" not in plain:
        return f"{'-':>7} {'-':>7} {'-':>6}"
    ours, theirs = row["send_msgs_per_s"], plain["send_msgs_per_s"]
    return f"{ours:>7.1f} {theirs:>7.1f} {ours / theirs:>6.2f}"


async def main(args: argparse.Namespace) -> None:
    tenant_counts = [3] if args.quick else [int(x) for x in args.tenants.split(",")]
    pools = [1, 3] if args.quick else [int(x) for x in args.per_runtime.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    rows: list[dict[str, Any]] = []
    plain: dict[int, dict[str, Any]] = {}
    try:
        async with start_simulator() as sim:
            await sim.create_contact(CONTACT)
            for tenants in tenant_counts:
                load = SendLoad(min(args.senders, tenants), args.send, args.in_flight)
                plain[tenants] = await plain_case(sim, work, tenants, load)
                print(json.dumps(plain[tenants]), file=sys.stderr, flush=True)
                for k in pools:
                    if k > tenants or (k == 1 and tenants > args.max_isolated):
                        continue
                    rows.append(await bridge_case(sim, work, tenants, k, load))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'T':>4} {'K':>4} {'procs':>5} {'linked':>7} {'RSS/tenant':>11} {'USS/tenant':>11} "
          f"{'plain RSS/t':>11} {'ratio':>6} {'crash: K back in':>17} {'msgs/s':>7} {'plain':>7} {'ratio':>6}")
    for row in rows:
        t = row["tenants"]
        per = row["runtime_rss_mib"] / t
        plain_per = plain[t]["rss_mib"] / t
        crash = f"{row['crash_k']} in {row['crash_back_s']:.1f}s" if "crash_k" in row else "-"
        print(f"{t:>4} {row['per_runtime']:>4} {row['processes']:>5} {row['linked_s']:>6.1f}s "
              f"{per:>8.1f} MiB {row['runtime_uss_mib'] / t:>8.1f} MiB {plain_per:>8.1f} MiB "
              f"{per / plain_per:>6.1f} {crash:>17} {_sends(row, plain[t])}")
    if args.json:
        print(json.dumps({"bridge": rows, "plain": list(plain.values())}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="10,50")
    parser.add_argument("--per-runtime", default="1,10,25,50")
    parser.add_argument("--max-isolated", type=int, default=10, help="largest T run with one runtime per tenant")
    parser.add_argument("--quick", action="store_true", help="3 tenants, K 1 and 3 (a smoke run)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--send", type=int, default=50, help="texts each sending tenant sends (0: no send case)")
    parser.add_argument("--senders", type=int, default=10, help="tenants that send while the rest idle")
    parser.add_argument("--in-flight", type=int, default=10, help="unacked sends per sending tenant")
    parser.add_argument("--restart", default="", help="restart levels, e.g. 200,500,1000 (cumulative linking; "
                        "a full `python -m bridge run` over each): time to all open, idle CPU, memory, /metrics")
    parser.add_argument("--plain", type=int, default=0, help="with --restart: plain Baileys sockets measured first")
    parser.add_argument("--settle", type=float, default=30.0, help="with --restart: seconds after all open before "
                        "the idle window")
    parser.add_argument("--idle", type=float, default=60.0, help="with --restart: length of the idle CPU window (s)")
    parser.add_argument("--monitor-scan", default="", help="tenant counts, e.g. 100,1000: the monitor's periodic "
                        "scan over idle folders, CPU and full looks per scan, full scan against scan now")
    parser.add_argument("--idle-scans", type=int, default=10, help="with --monitor-scan: idle scans measured")
    parser.add_argument("--registry-restart", default="", help="tenant counts, e.g. 50,100: registry changes "
                        "and writes while a SessionManager restarts that many linked tenants")
    parsed = parser.parse_args()
    if parsed.registry_restart:
        asyncio.run(registry_run(parsed))
    elif parsed.monitor_scan:
        asyncio.run(monitor_run(parsed))
    else:
        asyncio.run(scale_run(parsed) if parsed.restart else main(parsed))
