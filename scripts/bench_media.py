"""Benchmark: MB/s sending and receiving media through the bridge's API vs plain Baileys.

Same simulator (and its HTTPS media host), same run, same files. Send: `POST .../messages` as
multipart with the file streamed from disk (the answer waits for the server's ack) against
Baileys 7.0.0-rc14 in process (scripts/bench_media_baileys.mjs, `sendMessage` with `{url: path}`,
done at the server's ack). Receive: a simulator contact encrypts and uploads a fresh file to each
side; timed is the bridge's first `GET .../media` (download, HMAC and sha256 checks, decryption into
the cache, served back and hashed by the client) against Baileys' `downloadMediaMessage` as a
stream, hashed. Both sides' sha256 are checked against the file. Prints MB/s and the ratio
bridge/baileys per case (target >= 0.8): over all rounds, and the median and range of the per-round
ratios (the two sides alternate which goes first in each round).

    python scripts/bench_media.py [--repeat 5] [--cases image:1,document:1,document:16] [--quick]
                                  [--plain-nodelay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from PIL import Image  # noqa: E402

from bridge.api.app import create_app  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.events import EventBus  # noqa: E402
from bridge.sessions.manager import SessionManager  # noqa: E402
from bridge.store.snapshots import Snapshots  # noqa: E402
from tests.media.sim_media import send_media, trust_file  # noqa: E402
from tests.simulator.client import SimulatorClient, node_binary, start_simulator  # noqa: E402

BAILEYS = ROOT / "scripts" / "bench_media_baileys.mjs"
KEY = "bench-key-0123456789abcdef"
MB = 1 << 20


def make_file(folder: Path, kind: str, size: int) -> tuple[Path, str]:
    """A real file of about `size` bytes: a noise PNG (incompressible) or a PDF-headed document."""
    if kind == "image":
        side = max(8, int((size / 3) ** 0.5))
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        data, mimetype = out.getvalue(), "image/png"
    else:
        data, mimetype = b"%PDF-1.4\n" + os.urandom(size - 16) + b"\n%%EOF\n", "application/pdf"
    path = folder / f"{kind}-{size}-{hashlib.sha256(data).hexdigest()[:8]}"
    path.write_bytes(data)
    return path, mimetype


def parse_cases(text: str) -> list[tuple[str, int]]:
    """`image:1,document:16` -> [("image", 1 MB), ("document", 16 MB)]."""
    cases = []
    for item in text.split(","):
        kind, _, mb = item.partition(":")
        cases.append((kind, int(float(mb) * MB)))
    return cases


class Row:
    """One case: seconds per round of each side. The side that goes first alternates per round, so
    a load swing or a warm cache does not always favour the same one."""

    def __init__(self, name: str, mb: float) -> None:
        self.name, self.mb = name, mb
        self.bridge: list[float] = []
        self.plain: list[float] = []

    async def round(self, turn: int, bridge: Callable[..., Awaitable[float]], plain: Callable[..., Awaitable[float]],
                    *args: Any) -> None:
        if turn % 2:
            self.plain.append(await plain(*args))
            self.bridge.append(await bridge(*args))
        else:
            self.bridge.append(await bridge(*args))
            self.plain.append(await plain(*args))

    def rate(self, seconds: list[float]) -> float:
        return len(seconds) * self.mb / sum(seconds)

    def ratios(self) -> list[float]:
        return [p / b for b, p in zip(self.bridge, self.plain, strict=True)]


class PlainBaileys:
    """One bench_media_baileys.mjs process, linked by QR to `phone`; lines read by one task."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))
                self.arrived.set()
        self.arrived.set()

    async def expect(self, match: Callable[[dict[str, Any]], bool], within: float = 300) -> dict[str, Any]:
        async def first() -> dict[str, Any]:
            while True:
                for i, line in enumerate(self.lines):
                    if match(line):
                        return self.lines.pop(i)
                if self.reader.done():
                    raise RuntimeError("plain Baileys exited")
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(first(), within)

    async def command(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(body) + "\n").encode())
        await self.proc.stdin.drain()
        answer = await self.expect(lambda line: "seconds" in line or "error" in line)
        if "error" in answer:
            raise RuntimeError(f"plain Baileys: {answer['error']}")
        return answer


@contextlib.asynccontextmanager
async def plain_baileys(sim: SimulatorClient, folder: Path, phone: str, ca: Path,
                        nodelay: bool = False) -> AsyncIterator[PlainBaileys]:
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(BAILEYS), sim.ws_url, sim.root_pub, str(folder), *(["nodelay"] if nodelay else []), cwd=ROOT,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(ca)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    client = PlainBaileys(proc)
    try:
        first = await client.expect(lambda line: "qr" in line)
        await sim.scan(first["qr"], phone)
        await client.expect(lambda line: "open" in line)
        yield client
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        client.reader.cancel()


async def link_bridge(manager: SessionManager, sim: SimulatorClient, sid: str, phone: str) -> None:
    await manager.create(sid, "pairing_code", phone)
    code = await manager.request_pairing_code(sid, phone)
    await sim.enter_pairing_code(phone, code)
    await manager.wait_for_state(sid, {"open"}, 120)


class Bench:
    def __init__(self, http: aiohttp.ClientSession, base: str, bus: EventBus, sim: SimulatorClient,
                 plain: PlainBaileys, contact: str, bridge_phone: str, plain_phone: str) -> None:
        self.http, self.base, self.bus, self.sim, self.plain = http, base, bus, sim, plain
        self.contact, self.bridge_phone, self.plain_phone = contact, bridge_phone, plain_phone

    async def bridge_send(self, path: Path, kind: str, mimetype: str) -> float:
        form = aiohttp.FormData()
        form.add_field("to", self.contact)
        form.add_field("kind", kind)
        started = time.perf_counter()
        with path.open("rb") as source:
            form.add_field("file", source, filename=path.name, content_type=mimetype)
            async with self.http.post(f"{self.base}/api/v1/sessions/bench/messages", data=form,
                                      headers={"X-API-Key": KEY}) as response:
                if response.status != 201:
                    raise RuntimeError(f"bridge send failed: {response.status} {await response.text()}")
        return time.perf_counter() - started

    async def plain_send(self, path: Path, kind: str, mimetype: str) -> float:
        answer = await self.plain.command({"send": str(path), "kind": kind, "mimetype": mimetype,
                                           "to": f"{self.contact}@s.whatsapp.net"})
        return float(answer["seconds"])

    async def arrived(self, message_id: str) -> None:
        """The bridge's `message` event for `message_id` (the file is not downloaded yet)."""
        async def first() -> None:
            async for e in self.bus.subscribe("bench", after=0):
                if e.kind == "message" and e.data["id"] == message_id:
                    return

        await asyncio.wait_for(first(), 120)

    async def bridge_receive(self, data: bytes, kind: str, mimetype: str) -> float:
        message_id = await send_media(self.sim, self.contact, self.bridge_phone, kind, data, mimetype)
        await self.arrived(message_id)
        digest = hashlib.sha256()
        started = time.perf_counter()
        async with self.http.get(f"{self.base}/api/v1/sessions/bench/messages/{message_id}/media",
                                 headers={"X-API-Key": KEY}) as response:
            if response.status != 200:
                raise RuntimeError(f"bridge download failed: {response.status} {await response.text()}")
            async for chunk in response.content.iter_chunked(1 << 16):
                digest.update(chunk)
        seconds = time.perf_counter() - started
        if digest.hexdigest() != hashlib.sha256(data).hexdigest():
            raise RuntimeError("the bridge served other bytes than the contact sent")
        return seconds

    async def plain_receive(self, data: bytes, kind: str, mimetype: str) -> float:
        message_id = await send_media(self.sim, self.contact, self.plain_phone, kind, data, mimetype)
        await self.plain.expect(lambda line: line.get("received") == message_id)
        answer = await self.plain.command({"download": message_id})
        if answer["sha256"] != hashlib.sha256(data).hexdigest():
            raise RuntimeError("plain Baileys decrypted other bytes than the contact sent")
        return float(answer["seconds"])


async def main(args: argparse.Namespace) -> None:
    repeat = 1 if args.quick else args.repeat
    cases = ([("image", 64 << 10), ("document", 64 << 10)] if args.quick else parse_cases(args.cases))
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    rows: list[Row] = []
    try:
        async with start_simulator() as sim:
            ca = await trust_file(sim, work)
            contact, bridge_phone, plain_phone = "15559990101", "15558880101", "15557770101"
            await sim.create_contact(contact)
            settings = Settings(_env_file=None, auth_root=work / "auth", state_dir=work / "state",  # type: ignore[call-arg]
                                api_keys=[KEY], monitor_enabled=False, wa_url=sim.ws_url,
                                wa_trust_root=sim.root_pub, media_trust_ca=str(ca))
            settings.auth_root.mkdir(parents=True)
            bus = EventBus(settings.events_buffer)
            snapshots = Snapshots(settings.auth_root)
            manager = SessionManager(settings, bus, snapshots)
            runner = web.AppRunner(create_app(settings, manager, bus, snapshots))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            try:
                await link_bridge(manager, sim, "bench", bridge_phone)
                async with plain_baileys(sim, work / "plain", plain_phone, ca, args.plain_nodelay) as plain, \
                        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
                    bench = Bench(http, f"http://127.0.0.1:{port}", bus, sim, plain, contact, bridge_phone,
                                  plain_phone)
                    warm, warm_type = make_file(work, "document", 4096)
                    await bench.bridge_send(warm, "document", warm_type)
                    await bench.plain_send(warm, "document", warm_type)
                    for kind, size in cases:
                        path, mimetype = make_file(work, kind, size)
                        mb = path.stat().st_size / MB
                        row = Row(f"send {kind} {mb:.2f} MB", mb)
                        for turn in range(repeat):
                            await row.round(turn, bench.bridge_send, bench.plain_send, path, kind, mimetype)
                        rows.append(row)
                        row = Row(f"receive {kind} {mb:.2f} MB", mb)
                        for turn in range(repeat):
                            data = make_file(work, kind, size)[0].read_bytes()
                            await row.round(turn, bench.bridge_receive, bench.plain_receive, data, kind, mimetype)
                        rows.append(row)
            finally:
                await runner.cleanup()
                await manager.shutdown()
                await manager.media.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tuned = " (its uploads with Nagle off, as the bridge's)" if args.plain_nodelay else ""
    print(f"media MB/s, {repeat} round(s) per case, bridge and plain Baileys{tuned} alternating (same simulator and "
          "media host, same run); ratio = bridge / baileys over all rounds, then the median (range) of the "
          "per-round ratios")
    print(f"{'case':28} {'bridge':>8} {'baileys':>8} {'ratio':>6} {'median':>7}  range      per round")
    for row in rows:
        ratios = row.ratios()
        print(f"{row.name:28} {row.rate(row.bridge):8.2f} {row.rate(row.plain):8.2f} "
              f"{row.rate(row.bridge) / row.rate(row.plain):6.2f} {statistics.median(ratios):7.2f}  "
              f"{min(ratios):.2f}-{max(ratios):.2f}  {' '.join(f'{r:.2f}' for r in ratios)}")
    if args.json:
        print(json.dumps([{"case": row.name, "bridge": row.rate(row.bridge), "baileys": row.rate(row.plain),
                           "ratio": row.rate(row.bridge) / row.rate(row.plain),
                           "median_ratio": statistics.median(row.ratios()), "ratios": row.ratios()} for row in rows]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case (bridge and Baileys alternate)")
    parser.add_argument("--cases", default="image:1,document:1,document:16",
                        help="kind:MB,... (default image:1,document:1,document:16)")
    parser.add_argument("--quick", action="store_true", help="64 KB files, once each (smoke test)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plain-nodelay", action="store_true",
                        help="plain Baileys uploads with Nagle's algorithm off too, as the bridge's runtime does")
    os.environ.setdefault("BRIDGE_NODE_LOG_LEVEL", "error")
    asyncio.run(main(parser.parse_args()))
