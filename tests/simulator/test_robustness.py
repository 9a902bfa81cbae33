"""Hostile or broken clients cannot crash the simulator: garbage, oversize frames, bad handshakes,
bad control requests. Each case checks the process still serves a real login afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.simulator.client import SimulatorClient, start_simulator
from tests.simulator.driver import baileys, pair_by_qr

WA_INTRO = bytes([87, 65, 6, 3])  # "WA" + protocol version, Baileys' NOISE_WA_HEADER


@pytest.fixture
async def small_sim() -> AsyncIterator[SimulatorClient]:
    """A private simulator that accepts at most 64 KiB per WebSocket message / unparsed buffer."""
    async with start_simulator({"SIM_MAX_FRAME": str(64 * 1024)}) as sim:
        yield sim


async def send_raw(sim: SimulatorClient, *chunks: bytes, pause: float = 0.0) -> aiohttp.WSCloseCode | int | None:
    """Send chunks on a fresh WebSocket (`pause` s apart); return the close code once the server
    closes it. The server may hang up before the last chunk is written (it drops a violating client
    at once): the chunks left are then not sent."""
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url, max_msg_size=0) as ws:
        for index, chunk in enumerate(chunks):
            if ws.closed:
                break
            if index and pause:
                await asyncio.sleep(pause)
            try:
                await ws.send_bytes(chunk)
            except ConnectionResetError:  # aiohttp: "Cannot write to closing transport"
                break
        async for _ in ws:  # the server sends nothing useful to garbage; wait for its close
            pass
        return ws.close_code


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


async def assert_alive(sim: SimulatorClient, tmp: Path, phone: str) -> None:
    health = await sim.health()
    assert health["ok"] is True
    async with baileys(sim, tmp) as driver:
        await pair_by_qr(sim, driver, phone)


async def test_garbage_intro_is_closed_and_server_survives(small_sim: SimulatorClient, tmp_path: Path) -> None:
    await send_raw(small_sim, b"GET / HTTP/1.1\r\n\r\n" * 3)
    assert (await small_sim.health())["violations"] >= 1
    await assert_alive(small_sim, tmp_path, "15550400001")


async def test_oversize_websocket_message_is_refused(small_sim: SimulatorClient, tmp_path: Path) -> None:
    code = await send_raw(small_sim, WA_INTRO + frame(os.urandom(200 * 1024)))
    assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await assert_alive(small_sim, tmp_path, "15550400002")


async def test_trickled_huge_frame_cannot_grow_the_buffer(small_sim: SimulatorClient, tmp_path: Path) -> None:
    """A 16 MiB frame announced, then 32 KiB at a time: the server hangs up once 64 KiB are buffered.
    The chunks go 0.2 s apart, as a trickle does, so the client always still has some to send when
    it is dropped (sent in one burst, they were usually all written first, and a client slowed by a
    loaded machine failed on its next write)."""
    header = WA_INTRO + (16 * 1024 * 1024 - 1).to_bytes(3, "big")
    await send_raw(small_sim, header, *[os.urandom(32 * 1024) for _ in range(8)], pause=0.2)
    assert (await small_sim.health())["violations"] >= 1
    await assert_alive(small_sim, tmp_path, "15550400003")


async def test_garbage_handshake_frame_is_closed(small_sim: SimulatorClient, tmp_path: Path) -> None:
    await send_raw(small_sim, WA_INTRO + frame(b"\xff" * 100))
    await send_raw(small_sim, WA_INTRO + frame(b""))
    await assert_alive(small_sim, tmp_path, "15550400004")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=0, max_size=2048), with_intro=st.booleans())
async def test_random_bytes_never_crash_it(simulator: SimulatorClient, payload: bytes, with_intro: bool) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(simulator.ws_url) as ws:
        await ws.send_bytes((WA_INTRO if with_intro else b"") + payload)
        with contextlib.suppress(TimeoutError):
            await ws.receive(timeout=0.3)  # a partial frame leaves the server waiting: we hang up
    assert (await simulator.health())["ok"] is True


async def test_silent_client_is_dropped_after_handshake_timeout() -> None:
    async with start_simulator({"SIM_HANDSHAKE_TIMEOUT_MS": "500"}) as sim:
        code = await send_raw(sim, WA_INTRO)  # returns only because the server hung up
        assert code is not None


async def control(sim: SimulatorClient, method: str, path: str, data: bytes | None = None) -> tuple[int, object]:
    async with aiohttp.ClientSession() as http, http.request(method, sim.control_url + path, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nope", None, 404),
        ("DELETE", "/accounts", None, 405),
        ("POST", "/scan", b"{not json", 400),
        ("POST", "/scan", b"{}", 400),
        ("POST", "/scan", b'{"qr": "garbage"}', 400),
        ("POST", "/scan", b'{"qr": "2@unknown,AAAA,AAAA,AAAA"}', 404),
        ("POST", "/pair-code", b'{"phone": "15550409999", "code": "ABCDEFGH"}', 404),
        ("POST", "/fault", b'{"kind": "drop"}', 400),
        ("POST", "/fault", b'{"kind": "nonsense", "phone": "15550409998"}', 400),
        ("POST", "/accounts", b'{"phone": "12"}', 400),
        ("POST", "/contacts/15550409997/send", b'{"to": "15550409996", "text": "x"}', 404),
        ("POST", "/accounts", b"BIG", 413),
    ],
)
async def test_control_api_rejects_bad_requests_with_json_errors(
    simulator: SimulatorClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    if body == b"BIG":
        body = b"x" * (2 << 20)  # over the 1 MiB body limit
    got, payload = await control(simulator, method, path, body)
    assert got == status, payload
    assert isinstance(payload, dict) and payload["error"]["message"]
