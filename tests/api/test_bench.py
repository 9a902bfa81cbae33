"""Benchmarks of the API (run with `-m slow -s`); they print numbers and assert only correctness.

- request latency of GET /api/v1/sessions with 50 registered sessions, and of GET /healthz;
- QR rendering (png/svg/txt) per call;
- SSE fan-out: 10 streams each receive 2000 published events (events/s delivered in total).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from bridge.api.qr import render
from tests.api.conftest import AUTH, Bridge
from tests.api.sse import collect_until

pytestmark = pytest.mark.slow


def _report(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1000
    p99 = samples[int(len(samples) * 0.99) - 1] * 1000
    print(f"\n{name}: n={len(samples)} p50={p50:.2f} ms p99={p99:.2f} ms")


async def test_bench_request_latency(bridge: Bridge) -> None:
    for i in range(50):
        response = await bridge.client.post("/api/v1/sessions", json={"id": f"b{i}", "start": False}, headers=AUTH)
        assert response.status == 201
    for path, headers in (("/api/v1/sessions", AUTH), ("/healthz", {})):
        samples = []
        for _ in range(500):
            started = time.perf_counter()
            response = await bridge.client.get(path, headers=headers)
            await response.read()
            samples.append(time.perf_counter() - started)
            assert response.status == 200
        _report(f"GET {path} (50 sessions)", samples)


def test_bench_qr_render() -> None:
    ref = "2@" + "A" * 120 + "," + "B" * 44 + "," + "C" * 44 + "," + "D" * 44 + ",1"
    for fmt in ("png", "svg", "txt"):
        samples = []
        for _ in range(100):
            started = time.perf_counter()
            assert render.__wrapped__(ref, fmt)  # uncached: the cost of a fresh ref
            samples.append(time.perf_counter() - started)
        _report(f"QR render {fmt} (uncached, runs in a worker thread)", samples)


async def test_bench_sse_fan_out(bridge: Bridge) -> None:
    after = bridge.bus.last_seq
    streams = [await bridge.client.get(f"/api/v1/events?after={after}", headers=AUTH) for _ in range(10)]
    started = time.perf_counter()
    for batch in range(4):
        for i in range(500):
            bridge.bus.publish("fan", "test", {"n": batch * 500 + i})
        await asyncio.sleep(0)
        await asyncio.sleep(0.05)
    results = await asyncio.gather(
        *(collect_until(s, lambda m: m.event == "test" and m.data["data"]["n"] == 1999, 300) for s in streams)
    )
    elapsed = time.perf_counter() - started
    for got in results:
        assert [m.data["data"]["n"] for m in got if m.event == "test"] == list(range(2000))
    print(f"\nSSE fan-out: 10 streams x 2000 events in {elapsed:.2f} s = {20000 / elapsed:.0f} events/s delivered")
    for s in streams:
        s.close()
