"""Each injected fault reaches real Baileys as the DisconnectReason it maps that server behaviour to."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.simulator.client import FaultKind, SimulatorClient
from tests.simulator.driver import BaileysDriver, baileys, pair_by_qr

_phones = itertools.count(15550300001)

# DisconnectReason values of Baileys 7.0.0-rc14 (src/Types/index.ts)
CONNECTION_CLOSED, CONNECTION_LOST, TIMED_OUT = 428, 408, 408
LOGGED_OUT, FORBIDDEN, REPLACED, RESTART, UNAVAILABLE = 401, 403, 440, 515, 503


def closes(driver: BaileysDriver, after: int) -> int:
    return sum(1 for e in driver.events[after:] if e.get("connection") == "close")


async def close_event(driver: BaileysDriver, after: int) -> dict[str, object]:
    return await driver.wait_for(lambda e: e.get("connection") == "close", after=after)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("drop", CONNECTION_CLOSED),
        ("401", LOGGED_OUT),
        ("403", FORBIDDEN),
        ("440", REPLACED),
        ("503", UNAVAILABLE),
        ("stall", CONNECTION_LOST),
    ],
)
async def test_fault_maps_to_disconnect_reason(
    simulator: SimulatorClient, tmp_path: Path, kind: FaultKind, status: int
) -> None:
    phone = str(next(_phones))
    opts = {"keepAliveIntervalMs": 2000} if kind == "stall" else {}
    async with baileys(simulator, tmp_path, opts=opts) as driver:
        opened = await pair_by_qr(simulator, driver, phone)
        mark = len(driver.events)
        if kind in ("440", "503"):  # addressed by device jid instead of phone
            result = await simulator.fault(kind, jid=str(opened["me"]["id"]))
        else:
            result = await simulator.fault(kind, phone=phone)
        assert result["applied"] == 1
        closed = await close_event(driver, mark)
        assert closed["status"] == status, closed
    if kind == "401":
        device = next(d for d in await simulator.devices() if d.phone == phone)
        assert device.removed
    if kind == "403":
        assert next(a for a in await simulator.accounts() if a.phone == phone).banned
        await simulator.unban(phone)


async def test_515_restarts_and_reopens(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = str(next(_phones))
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, phone)
        mark = len(driver.events)
        await simulator.fault("515", phone=phone)
        closed = await close_event(driver, mark)
        assert closed["status"] == RESTART
        reopened = await driver.wait_for(lambda e: e.get("connection") == "open", after=mark)
        assert reopened["me"]["id"].startswith(f"{phone}:")


async def test_removed_device_cannot_log_in_again(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = str(next(_phones))
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, phone)
        mark = len(driver.events)
        await simulator.fault("401", phone=phone)
        await close_event(driver, mark)
    async with baileys(simulator, tmp_path) as again:
        closed = await close_event(again, 0)
        assert closed["status"] == LOGGED_OUT
        assert not any(e.get("connection") == "open" for e in again.events)


async def test_banned_account_login_is_forbidden_until_unbanned(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = str(next(_phones))
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, phone)
        mark = len(driver.events)
        await simulator.fault("403", phone=phone)
        await close_event(driver, mark)
    async with baileys(simulator, tmp_path) as again:
        assert (await close_event(again, 0))["status"] == FORBIDDEN
    await simulator.unban(phone)
    async with baileys(simulator, tmp_path) as third:
        opened = await third.wait_for(lambda e: e.get("connection") in ("open", "close"))
        assert opened["connection"] == "open"


async def test_second_login_of_same_device_replaces_the_first(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = str(next(_phones))
    async with baileys(simulator, tmp_path) as first:
        await pair_by_qr(simulator, first, phone)
        mark = len(first.events)
        async with baileys(simulator, tmp_path) as second:
            await second.wait_for(lambda e: e.get("connection") == "open")
            assert (await close_event(first, mark))["status"] == REPLACED


async def test_slow_handshake_times_out(simulator: SimulatorClient, tmp_path: Path) -> None:
    await simulator.fault("slow_handshake", delay_ms=20000, count=1)
    async with baileys(simulator, tmp_path, opts={"connectTimeoutMs": 3000}) as driver:
        closed = await close_event(driver, 0)
        assert closed["status"] == TIMED_OUT


async def test_unpinned_client_refuses_chain_with_bad_serial(simulator: SimulatorClient, tmp_path: Path) -> None:
    await simulator.fault("bad_cert", count=1)
    async with baileys(simulator, tmp_path, pin_root=False) as driver:
        closed = await close_event(driver, 0)
        assert "certification match failed" in str(closed["error"])
        assert not any(e.get("qr") for e in driver.events)


async def test_bad_frame_is_an_unhandled_rejection_then_connection_lost(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    """Baileys decrypts frames inside an async ws listener: a frame that fails Noise decryption is an
    unhandled promise rejection (fatal under Node's default policy, so the runtime must handle
    'unhandledRejection'), and since the read counter is now off, nothing decrypts any more and
    the keep-alive reports the connection lost."""
    phone = str(next(_phones))
    async with baileys(simulator, tmp_path, opts={"keepAliveIntervalMs": 2000}) as driver:
        await pair_by_qr(simulator, driver, phone)
        mark = len(driver.events)
        assert (await simulator.fault("bad_frame", phone=phone))["applied"] == 1
        rejection = await driver.wait_for(lambda e: e.get("ev") == "unhandled_rejection", after=mark)
        assert "authenticate" in str(rejection["message"])
        closed = await close_event(driver, mark)
        assert closed["status"] == CONNECTION_LOST
