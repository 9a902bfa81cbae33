"""Benchmark: server-acked text messages per second through the bridge's API vs plain Baileys.

Same simulator, same run, same messages: `POST /api/v1/sessions/{id}/messages` (the answer waits
for the server's ack) against Baileys 7.0.0-rc14 in process with useMultiFileAuthState
(scripts/bench_messages_baileys.mjs, each send done when the server's ack arrived). Three cases:
one session sequential, one session with 10 in flight, 10 sessions at once (10 in flight each).
Each case alternates bridge and plain Baileys in `--rounds` rounds, so a load swing on a shared
machine hits both alike. Prints msgs/s, the ratio bridge/baileys over all rounds and the median
and range of the per-round ratios (targets: >= 0.8 sequential, >= 0.9 with 10 in flight), and
where the bridge's time goes: IPC round trips and store fsyncs per message by kind (from the
bridge's own counters), for sends and for messages the contact sends to the session, and the CPU
time per message of each process (this one, which also runs the HTTP client, the bridge's Node
runtimes, plain Baileys, the simulator; psutil, 10 ms resolution; the kernel's share of this
process's time apart: fsyncs, pipes, thread wake-ups).

Finding where the CPU goes: `--cases 1` runs only the sequential case (`1,2,3,4`: sequential, 10
in flight, all sessions, received), `--profile FILE` records this process's CPU (yappi, every
thread) during the bridge's rounds only and writes pstats to FILE. The bridge runs in this process on
the event loop `python -m bridge` would use (`BRIDGE_EVENT_LOOP`, uvloop by default; the HTTP client
shares it); `--loop asyncio` or `--loop uvloop` picks one for comparison, `--inline off` keeps
every commit in worker threads (`BRIDGE_INLINE_COMMITS=false`). For the Node runtime, set
BRIDGE_NODE to a wrapper that adds `--cpu-prof` (docs/performance.md shows one).

    python scripts/bench_messages.py [--count 200] [--sessions 10] [--rounds 5] [--quick]
        [--cases 1,2,3,4] [--profile FILE] [--loop uvloop|asyncio] [--inline on|off]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402

from bridge import metrics  # noqa: E402
from bridge.api.app import create_app  # noqa: E402
from bridge.cli.run import loop_factory  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.events import EventBus, EventKind  # noqa: E402
from bridge.sessions.manager import SessionManager  # noqa: E402
from bridge.store import inline  # noqa: E402
from bridge.store.snapshots import Snapshots  # noqa: E402
from tests.simulator.client import SimulatorClient, node_binary, start_simulator  # noqa: E402

BAILEYS = ROOT / "scripts" / "bench_messages_baileys.mjs"
KEY = "bench-key-0123456789abcdef"


def _counter_total(counter: Any) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def _by_label(counter: Any, *labels: str) -> dict[str, float]:
    return {"/".join(s.labels[label] for label in labels): s.value
            for m in counter.collect() for s in m.samples if s.name.endswith("_total")}


def _histogram(hist: Any) -> tuple[float, float]:
    """(sum of seconds, count) of a histogram without labels."""
    values = {s.name: s.value for m in hist.collect() for s in m.samples}
    return values.get(f"{hist._name}_sum", 0.0), values.get(f"{hist._name}_count", 0.0)


def _per_message(before: dict[str, float], after: dict[str, float], count: int) -> str:
    parts = [f"{k} {(v - before.get(k, 0.0)) / count:.2f}" for k, v in sorted(after.items())
             if v - before.get(k, 0.0) > 0]
    return ", ".join(parts)


class CpuMeter:
    """CPU seconds (user + system) by role: this process (the bridge, and the HTTP client driving it),
    the bridge's Node runtimes, the plain Baileys processes and the simulator (children looked up at
    each sample: a runtime may have been restarted)."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.seen: dict[int, psutil.Process] = {}

    def _role(self, proc: psutil.Process) -> str:
        line = " ".join(proc.cmdline())
        if BAILEYS.name in line:
            return "plain"
        return "runtime" if "index.mjs" in line else "simulator"

    def sample(self) -> dict[str, float]:
        times = self.me.cpu_times()
        used = {"bridge": times.user + times.system, "bridge_sys": times.system, "runtime": 0.0, "plain": 0.0,
                "simulator": 0.0}
        for child in self.me.children(recursive=True):
            proc = self.seen.setdefault(child.pid, child)
            try:
                times = proc.cpu_times()
                used[self._role(proc)] += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return used


def _spent(before: dict[str, float], after: dict[str, float], into: dict[str, float]) -> None:
    for role, value in after.items():
        into[role] = into.get(role, 0.0) + value - before[role]


class PlainBaileys:
    """One bench_messages_baileys.mjs process, linked by QR to `phone`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> dict[str, Any]:
        """The next JSON line (libsignal prints its own chatter on a plain Baileys' stdout)."""
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                raise RuntimeError("plain Baileys exited")
            if raw.startswith(b"{"):
                result: dict[str, Any] = json.loads(raw)
                return result

    async def run(self, to: str, count: int, concurrency: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"to": to, "count": count, "concurrency": concurrency}) + "\n").encode())
        await self.proc.stdin.drain()
        done = await self.line()
        return float(done["seconds"])


@contextlib.asynccontextmanager
async def plain_baileys(sim: SimulatorClient, folder: Path, phone: str) -> AsyncIterator[PlainBaileys]:
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(BAILEYS), sim.ws_url, sim.root_pub, str(folder), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    client = PlainBaileys(proc)
    try:
        first = await client.line()
        await sim.scan(first["qr"], phone)
        while "open" not in await client.line():
            pass
        yield client
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def link_bridge(manager: SessionManager, sim: SimulatorClient, sid: str, phone: str) -> None:
    await manager.create(sid, "pairing_code", phone)
    code = await manager.request_pairing_code(sid, phone)
    await sim.enter_pairing_code(phone, code)
    await manager.wait_for_state(sid, {"open"}, 120)


async def bridge_run(http: aiohttp.ClientSession, base: str, sid: str, to: str, count: int,
                     concurrency: int) -> float:
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            async with http.post(f"{base}/api/v1/sessions/{sid}/messages", json={"to": to, "text": f"bench {i}"},
                                 headers={"X-API-Key": KEY}) as response:
                if response.status != 201:
                    raise RuntimeError(f"send failed: {response.status} {await response.text()}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def receive_case(sim: SimulatorClient, bus: EventBus, manager: SessionManager, sid: str, phone: str,
                       contact: str, count: int) -> str:
    """The contact sends `count` texts to the session; auth requests per received message."""
    ops0 = _by_label(metrics.IPC_REQUESTS, "op")
    fst0 = _by_label(metrics.STORE_FSYNCS, "target")
    seen = 0

    async def arrivals() -> None:
        nonlocal seen
        async for event in bus.subscribe(sid):
            if event.kind == EventKind.MESSAGE and not event.data.get("from_me"):
                seen += 1
                if seen >= count:
                    return

    waiter = asyncio.create_task(arrivals())
    await asyncio.sleep(0)
    for i in range(count):
        await sim.send_from_contact(contact, phone, f"incoming {i}")
    await asyncio.wait_for(waiter, 120)
    return (f"{_per_message(ops0, _by_label(metrics.IPC_REQUESTS, 'op'), count)}; "
            f"fsyncs: {_per_message(fst0, _by_label(metrics.STORE_FSYNCS, 'target'), count)}")


async def main(args: argparse.Namespace) -> None:
    count = 20 if args.quick else args.count
    sessions = 2 if args.quick else args.sessions
    rounds = 2 if args.quick else args.rounds
    inline.configure(enabled=args.inline == "on")
    work = Path(tempfile.mkdtemp(prefix="bench-messages-"))
    try:
        await measure(args, work, count, sessions, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def measure(args: argparse.Namespace, work: Path, count: int, sessions: int, rounds: int) -> None:
    """Every case against one simulator; prints the table (see module docstring)."""
    profiler = importlib.import_module("yappi") if args.profile else None  # a dev tool, imported only when asked
    if profiler is not None:
        profiler.set_clock_type("cpu")
    async with start_simulator() as sim:
        contact = "15559990001"
        await sim.create_contact(contact)
        to = f"{contact}@s.whatsapp.net"
        settings = Settings(_env_file=None, auth_root=work / "auth", state_dir=work / "state",  # type: ignore[call-arg]
                            api_keys=[KEY], monitor_enabled=False, wa_url=sim.ws_url, wa_trust_root=sim.root_pub)
        settings.auth_root.mkdir(parents=True)
        bus = EventBus(settings.events_buffer)
        snapshots = Snapshots(settings.auth_root)
        manager = SessionManager(settings, bus, snapshots)
        runner = web.AppRunner(create_app(settings, manager, bus, snapshots))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        rows: list[tuple[str, float, float, list[float], str]] = []
        detail: list[str] = []
        try:
            bridge_ids = [f"bench-{i}" for i in range(sessions)]
            phones = [f"1555888{i:04d}" for i in range(sessions)]
            await asyncio.gather(*(link_bridge(manager, sim, s, p) for s, p in zip(bridge_ids, phones, strict=True)))
            async with contextlib.AsyncExitStack() as stack:
                plain = [await stack.enter_async_context(
                    plain_baileys(sim, work / f"plain-{i}", f"1555777{i:04d}")) for i in range(sessions)]
                async with aiohttp.ClientSession() as http:
                    await bridge_run(http, base, bridge_ids[0], to, 3, 1)  # warm-up: sessions, on-WhatsApp check
                    await plain[0].run(to, 3, 1)

                    meter = CpuMeter()
                    cpu: dict[str, dict[str, float]] = {"bridge": {}, "plain": {}}

                    async def one_side(side: str, runs: list[Any]) -> float:
                        profiling = profiler is not None and side == "bridge"
                        if profiling:
                            profiler.start()
                        used0, t0 = meter.sample(), time.perf_counter()
                        await asyncio.gather(*runs)
                        took = time.perf_counter() - t0
                        if profiling:
                            profiler.stop()
                        _spent(used0, meter.sample(), cpu[side])
                        return took

                    async def one_session(concurrency: int, n: int) -> tuple[float, float]:
                        return (await one_side("bridge", [bridge_run(http, base, bridge_ids[0], to, n, concurrency)]),
                                await one_side("plain", [plain[0].run(to, n, concurrency)]))

                    async def all_sessions(concurrency: int, n: int) -> tuple[float, float]:
                        return (await one_side("bridge", [bridge_run(http, base, s, to, n, concurrency)
                                                          for s in bridge_ids]),
                                await one_side("plain", [p.run(to, n, concurrency) for p in plain]))

                    cases = (("1 session, sequential", one_session, 1, 1),
                             ("1 session, 10 in flight", one_session, 10, 1),
                             (f"{sessions} sessions, 10 in flight each", all_sessions, 10, sessions))
                    for case_no, (name, run_case, concurrency, width) in enumerate(cases, 1):
                        if case_no not in args.cases:
                            continue
                        ipc0 = _counter_total(metrics.IPC_REQUESTS)
                        fs0 = _counter_total(metrics.STORE_FSYNCS)
                        ops0 = _by_label(metrics.IPC_REQUESTS, "op")
                        fst0 = _by_label(metrics.STORE_FSYNCS, "target")
                        where0 = _by_label(metrics.INLINE_COMMITS, "store", "where")
                        writes0 = _histogram(metrics.STORE_WRITE_SECONDS)
                        log0 = _histogram(metrics.EVENT_LOG_COMMIT_SECONDS)
                        ratios: list[float] = []
                        cpu["bridge"], cpu["plain"] = {}, {}
                        spent = [0.0, 0.0]
                        per_round = max(1, count // rounds)
                        for _ in range(rounds):
                            t_bridge, t_plain = await run_case(concurrency, per_round)
                            spent[0] += t_bridge
                            spent[1] += t_plain
                            ratios.append(t_plain / t_bridge)
                        sent = per_round * rounds * width
                        ipc = (_counter_total(metrics.IPC_REQUESTS) - ipc0) / sent
                        fsyncs = (_counter_total(metrics.STORE_FSYNCS) - fs0) / sent
                        writes1 = _histogram(metrics.STORE_WRITE_SECONDS)
                        batches = writes1[1] - writes0[1]
                        commit_ms = 1000 * (writes1[0] - writes0[0]) / batches if batches else 0.0
                        log1 = _histogram(metrics.EVENT_LOG_COMMIT_SECONDS)
                        where1 = _by_label(metrics.INLINE_COMMITS, "store", "where")
                        detail.append(f"{name}: {_per_message(ops0, _by_label(metrics.IPC_REQUESTS, 'op'), sent)}; "
                                      f"fsyncs: {_per_message(fst0, _by_label(metrics.STORE_FSYNCS, 'target'), sent)}; "
                                      f"store writes: {batches / sent:.2f}/msg, {commit_ms:.2f} ms each "
                                      "(journal append + fdatasync; the legacy files follow after the answer); "
                                      f"event log: {(log1[1] - log0[1]) / sent:.2f} commits/msg "
                                      "(its row, events and statuses; one fsync each); commits by store/where "
                                      f"they ran: {_per_message(where0, where1, sent)}")
                        b, pl = ({k: 1000 * v / sent for k, v in cpu[side].items()} for side in ("bridge", "plain"))
                        detail.append(f"{name}: CPU ms/msg: bridge {b['bridge']:.2f} Python (with the HTTP client; "
                                      f"{b['bridge_sys']:.2f} of it in the kernel) + "
                                      f"{b['runtime']:.2f} Node, simulator {b['simulator']:.2f}; plain Baileys "
                                      f"{pl['plain']:.2f} Node, simulator {pl['simulator']:.2f}")
                        rows.append((name, sent / spent[0], sent / spent[1], sorted(ratios),
                                     f"{1 + ipc:.1f} IPC round trips/msg (1 send + {ipc:.1f} auth requests), "
                                     f"{fsyncs:.1f} fsyncs/msg"))
                    if 4 in args.cases:
                        received = await receive_case(sim, bus, manager, bridge_ids[0], phones[0], contact, count)
                        detail.append(f"received by 1 session: {received}")
        finally:
            await runner.cleanup()
            await manager.shutdown()
    if profiler is not None:
        profiler.get_func_stats().save(args.profile, type="pstat")
        print(f"yappi CPU profile of the bridge's sides (this process, every thread): {args.profile} (pstats)")
    print(f"server-acked text messages/s, {count} messages per case in {rounds} alternating rounds "
          f"(bridge, then plain Baileys; same simulator, same run; event loop: {args.loop}; "
          f"inline commits: {args.inline})")
    print(f"{'case':38} {'bridge':>9} {'baileys':>9} {'ratio':>6} {'rounds: median (min-max)':>26}  "
          "where the bridge's time goes")
    for name, bridge_rate, plain_rate, ratios, where in rows:
        spread = f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        print(f"{name:38} {bridge_rate:9.1f} {plain_rate:9.1f} {bridge_rate / plain_rate:6.2f} {spread:>26}  {where}")
    for line in detail:
        print(f"per message, {line}")
    if args.json:
        print(json.dumps([{"case": r[0], "bridge": r[1], "baileys": r[2], "ratio": r[1] / r[2],
                           "round_ratios": r[3]} for r in rows]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternate bridge and plain Baileys this many times per case (load on a shared "
                             "machine moves both alike); the ratio of each round is printed")
    parser.add_argument("--quick", action="store_true", help="20 messages, 2 sessions (smoke test)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="profile this process's CPU (yappi, every thread) while "
                        "the bridge's side of each round runs; pstats written to FILE")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"),
                        help="the event loop of this process (the bridge and the HTTP client); default: the one "
                        "`python -m bridge` uses (BRIDGE_EVENT_LOOP)")
    parser.add_argument("--inline", choices=("on", "off"), default="on",
                        help="short commits on the event loop's thread (BRIDGE_INLINE_COMMITS, bridge/store/inline.py)")
    parser.add_argument("--cases", type=lambda v: {int(c) for c in v.split(",")}, default={1, 2, 3, 4},
                        help="which cases to run, e.g. 1,2 (1 sequential, 2 10 in flight, 3 all sessions, "
                             "4 received); default all")
    os.environ.setdefault("BRIDGE_NODE_LOG_LEVEL", "error")
    options = parser.parse_args()
    options.loop = options.loop or Settings(_env_file=None).event_loop  # type: ignore[call-arg]
    factory = loop_factory(Settings(_env_file=None, event_loop=options.loop))  # type: ignore[call-arg]
    if factory is None:
        options.loop = "asyncio"
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(options))
