"""Benchmark: time to send one text to a group of 5, 50 and 256 members, bridge vs plain Baileys.

Same simulator, same run, same group: a contact creates the group with the bridge's session, a
plain Baileys client (scripts/bench_messages_baileys.mjs, useMultiFileAuthState, in process) and
contacts up to the size; every member contact decrypts every message. For each sender it prints
the first send (the sender key goes pairwise to every member device, then one `skmsg`) and the mean
of the next sends (one `skmsg`), each done at the server's ack, and the `w:g2` metadata queries
the group answered during those sends (the bridge sends from its metadata cache; plain Baileys
without `cachedGroupMetadata` asks every time).

    python scripts/bench_groups.py [--sizes 5,50,256] [--next 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from bench_messages import KEY, link_bridge, plain_baileys  # type: ignore[import-not-found]  # noqa: E402

from bridge.api.app import create_app  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.events import EventBus  # noqa: E402
from bridge.sessions.manager import SessionManager  # noqa: E402
from bridge.store.snapshots import Snapshots  # noqa: E402
from tests.simulator.client import SimulatorClient, start_simulator  # noqa: E402


async def queries(http: aiohttp.ClientSession, sim: SimulatorClient, group: str) -> int:
    async with http.get(f"{sim.control_url}/groups/{group}") as response:
        data: dict[str, Any] = await response.json()
        return int(data["metadata_queries"])


async def bridge_send(http: aiohttp.ClientSession, base: str, group: str, text: str) -> float:
    started = time.perf_counter()
    async with http.post(f"{base}/api/v1/sessions/bench/messages", json={"to": group, "text": text},
                         headers={"X-API-Key": KEY}) as response:
        if response.status != 201:
            raise RuntimeError(f"send failed: {response.status} {await response.text()}")
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    rows: list[tuple[int, str, float, float, int]] = []
    async with start_simulator() as sim, aiohttp.ClientSession() as http:
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
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        contacts = [f"1555666{i:04d}" for i in range(max(sizes) - 2)]
        for phone in contacts:
            await sim.create_contact(phone)
        try:
            await link_bridge(manager, sim, "bench", "15556660001")
            async with contextlib.AsyncExitStack() as stack:
                plain = await stack.enter_async_context(plain_baileys(sim, work / "plain", "15556660002"))
                for size in sizes:
                    members = ["15556660001", "15556660002", *contacts[1:size - 2]]
                    group = (await sim.create_group(contacts[0], f"bench {size}", members)).id
                    await asyncio.sleep(1.0)  # both clients see the create notification
                    q0 = await queries(http, sim, group)
                    first = await bridge_send(http, base, group, "first")
                    rest = [await bridge_send(http, base, group, f"next {i}") for i in range(args.next)]
                    q1 = await queries(http, sim, group)
                    rows.append((size, "bridge", first, sum(rest) / len(rest), q1 - q0))
                    p_first = await plain.run(group, 1, 1)
                    p_rest = await plain.run(group, args.next, 1) / args.next
                    rows.append((size, "plain Baileys", p_first, p_rest, await queries(http, sim, group) - q1))
        finally:
            await runner.cleanup()
            await manager.shutdown()
    print(f"one text to a group, until the server's ack (same simulator, same run; next = mean of {args.next})")
    print(f"{'members':>7} {'sender':14} {'first ms':>9} {'next ms':>8} {'w:g2 queries':>13}")
    for size, who, first_s, next_s, q in rows:
        print(f"{size:7d} {who:14} {first_s * 1000:9.1f} {next_s * 1000:8.1f} {q:13d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,50,256")
    parser.add_argument("--next", type=int, default=5)
    os.environ.setdefault("BRIDGE_NODE_LOG_LEVEL", "error")
    asyncio.run(main(parser.parse_args()))
