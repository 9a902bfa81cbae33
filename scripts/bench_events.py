"""Benchmark: events persisted and delivered, durable event log vs the in-memory path (not a test).

Same run, same workload: bursts of N events (a `message` with ~200 bytes of data, 10 sessions).
- committed: an event counts when a committed subscriber (what SSE and webhooks follow) has it;
  in memory that is the bus without a log (published = committed, the bridge before issue 14),
  durable means one SQLite transaction (synchronous=FULL) per burst first.
- delivered: an event counts when a local HTTP receiver has it; in memory = a bus subscriber with
  one worker per session POSTing in order (the dispatcher before issue 14), durable = event log,
  outbox and WebhookDispatcher (concurrency 10, one per session). Target: ratio >= 0.8 at bursts
  of 100. Then the durable path's delivery latency (publish -> receiver) p50/p99.

    python scripts/bench_events.py [--events 5000] [--burst 100] [--webhook-events 2000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bridge.config import Settings  # noqa: E402
from bridge.eventlog.log import EventLog  # noqa: E402
from bridge.events import EventBus, event_json  # noqa: E402
from bridge.webhooks.config import Webhook, WebhookConfigs  # noqa: E402
from bridge.webhooks.dispatcher import WebhookDispatcher  # noqa: E402
from bridge.webhooks.signing import new_secret  # noqa: E402

PAD = "x" * 200
SESSIONS = 10


async def committed_rate(bus: EventBus, events: int, burst: int) -> float:
    """events/s from the first publish until a committed subscriber has the last one."""
    sub = bus.open_subscription(committed=True)
    start = time.perf_counter()
    last = 0
    for first in range(0, events, burst):
        for n in range(first, min(first + burst, events)):
            last = bus.publish(f"s{n % 10}", "message", {"n": n, "pad": PAD}).seq
        await asyncio.sleep(0)
    while True:
        if (await sub.next()).seq >= last:
            break
    elapsed = time.perf_counter() - start
    sub.close()
    return events / elapsed


class Receiver:
    """A local webhook receiver recording, per seq, the time from publish to arrival."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.took: dict[int, float] = {}
        self.wanted = 0
        self.done = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def receive(self, request: web.Request) -> web.Response:
        seq = json.loads(await request.read())["seq"]
        self.took.setdefault(seq, time.perf_counter() - self.sent[seq])
        if len(self.took) >= self.wanted:
            self.done.set()
        return web.Response(status=204)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    async def run(self, bus: EventBus, count: int, burst: int) -> float:
        """Publish `count` events in bursts; events/s until every one arrived."""
        self.sent, self.took = {}, {}
        self.wanted, self.done = count, asyncio.Event()
        start = time.perf_counter()
        for first in range(0, count, burst):
            for n in range(first, min(first + burst, count)):
                self.sent[bus.last_seq + 1] = time.perf_counter()
                bus.publish(f"s{n % SESSIONS}", "message", {"n": n, "pad": PAD})
            await asyncio.sleep(0.001)
        await asyncio.wait_for(self.done.wait(), 600)
        return count / (time.perf_counter() - start)


async def in_memory_delivery(url: str, receiver: Receiver, count: int, burst: int) -> float:
    """The path before the event log: a bus subscriber, one worker per session POSTing in order."""
    bus = EventBus(subscriber_queue=count + 10)
    queues: dict[str, asyncio.Queue[bytes]] = {}
    async with aiohttp.ClientSession() as http:

        async def worker(queue: asyncio.Queue[bytes]) -> None:
            while True:
                body = await queue.get()
                async with http.post(url, data=body) as response:
                    await response.read()

        async def follow() -> None:
            async for event in bus.subscribe(committed=True):
                queue = queues.get(event.session or "")
                if queue is None:
                    queue = queues[event.session or ""] = asyncio.Queue()
                    workers.append(asyncio.create_task(worker(queue)))
                queue.put_nowait(event_json(event))

        workers: list[asyncio.Task[None]] = []
        follower = asyncio.create_task(follow())
        await asyncio.sleep(0)
        rate = await receiver.run(bus, count, burst)
        for task in (follower, *workers):
            task.cancel()
    return rate


async def durable_delivery(folder: Path, url: str, receiver: Receiver, count: int, burst: int) -> float:
    """The event log and the outbox dispatcher (webhook_concurrency = one per session, as above)."""
    settings = Settings(_env_file=None, auth_root=folder / "auth",  # type: ignore[call-arg]
                        webhook_concurrency=SESSIONS)
    bus = EventBus()
    log = EventLog(folder / "hook-state" / "events.db", bus)
    await log.open()
    dispatcher = WebhookDispatcher(settings, log, WebhookConfigs(folder / "hook-state" / "webhooks.json"))
    await dispatcher.start()
    await dispatcher.put(Webhook(id="bench", url=url, secret=new_secret()))
    rate = await receiver.run(bus, count, burst)
    await dispatcher.stop()
    await log.close()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--webhook-events", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        memory = await committed_rate(EventBus(), args.events, args.burst)
        bus = EventBus()
        log = EventLog(folder / "state" / "events.db", bus)
        await log.open()
        durable = await committed_rate(bus, args.events, args.burst)
        await log.close()
        receiver = Receiver()
        url = await receiver.start()
        delivered_memory = await in_memory_delivery(url, receiver, args.webhook_events, args.burst)
        delivered_durable = await durable_delivery(folder, url, receiver, args.webhook_events, args.burst)
        took = sorted(receiver.took.values())
        assert receiver.runner is not None
        await receiver.runner.cleanup()
    result = {
        "burst": args.burst,
        "committed_in_memory_per_s": round(memory),
        "committed_durable_per_s": round(durable),
        "committed_ratio": round(durable / memory, 3),
        "delivered_in_memory_per_s": round(delivered_memory),
        "delivered_durable_per_s": round(delivered_durable),
        "delivered_ratio": round(delivered_durable / delivered_memory, 3),
        "webhook_p50_ms": round(statistics.median(took) * 1000, 2),
        "webhook_p99_ms": round(took[max(0, int(len(took) * 0.99) - 1)] * 1000, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    asyncio.run(main())
