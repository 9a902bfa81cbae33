"""Which creds count as linked, checked against real Baileys linking through the simulator.

The store's `is_registered` decides whether creds are worth a snapshot, a downgrade hook and a
repair. These tests read creds.json as real Baileys 7.0.0-rc14 (plain useMultiFileAuthState)
saves it at each step of a QR link and a pairing-code link.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.store.creds import account_jid, is_registered
from tests.simulator.client import SimulatorClient
from tests.simulator.driver import baileys, pair_by_qr


async def _creds_when(folder: Path, ready: Callable[[dict[str, Any]], bool], within: float = 30.0) -> dict[str, Any]:
    """creds.json once `ready(creds)` holds (Baileys saves asynchronously after creds.update)."""
    deadline = time.monotonic() + within
    while True:
        try:
            creds: dict[str, Any] = json.loads((folder / "creds.json").read_text())
        except (FileNotFoundError, ValueError):
            creds = {}
        if creds and ready(creds):
            return creds
        assert time.monotonic() < deadline, f"creds.json never got there: {sorted(creds)}"
        await asyncio.sleep(0.05)


async def test_a_qr_link_sets_account_and_is_registered(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = "15550300001"
    async with baileys(simulator, tmp_path) as driver:
        await pair_by_qr(simulator, driver, phone)
    linked = await _creds_when(tmp_path, lambda c: bool(c.get("account")))
    assert linked["registered"] is False, "a QR link leaves `registered` false: `account` is the proof"
    assert is_registered(linked)
    assert account_jid(linked) == f"{phone}@s.whatsapp.net"


async def test_a_pairing_code_request_is_not_registered_until_the_phone_confirms(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    phone = "15550300002"
    async with baileys(simulator, tmp_path) as driver:
        await driver.wait_for(lambda e: bool(e.get("qr")))
        await driver.command("pair_code", phone=phone)
        code = await driver.wait_for(lambda e: e.get("ev") == "pairing_code")
        requested = await _creds_when(tmp_path, lambda c: bool(c.get("pairingCode")))
        assert requested["me"]["name"] == "~" and "account" not in requested
        assert not is_registered(requested), "`me` set by requestPairingCode is not a link"
        assert account_jid(requested) is None
        await simulator.enter_pairing_code(phone, str(code["code"]))
        await driver.wait_for(lambda e: e.get("connection") == "open")
    linked = await _creds_when(tmp_path, lambda c: bool(c.get("account")))
    assert linked["registered"] is True
    assert is_registered(linked)
    assert account_jid(linked) == f"{phone}@s.whatsapp.net"
