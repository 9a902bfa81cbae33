"""The simulator's login acceptance tests: real Baileys with useMultiFileAuthState in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.simulator.client import SimulatorClient, SimulatorError
from tests.simulator.driver import baileys, pair_by_qr


async def test_qr_pairing_opens_and_saved_folder_logs_in_without_qr(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = "15550100001"
    async with baileys(simulator, tmp_path) as first:
        opened = await pair_by_qr(simulator, first, phone)
        assert opened["me"]["id"].startswith(f"{phone}:")
        restarts = [e for e in first.events if e.get("status") == 515]
        assert restarts, "pairing must end with the 515 restart"
    creds = json.loads((tmp_path / "creds.json").read_text())
    assert creds["me"]["id"] == opened["me"]["id"]
    device = await simulator.device(opened["me"]["id"])
    assert device is not None and device.pre_keys > 0, "Baileys uploaded pre-keys after login"

    async with baileys(simulator, tmp_path) as second:
        again = await second.wait_for(lambda e: e.get("connection") in ("open", "close"))
        assert again["connection"] == "open", again
        assert again["me"]["id"] == opened["me"]["id"]
        assert not any(e.get("qr") for e in second.events), "a saved folder must not ask for a QR"


async def test_pairing_code_login_opens(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = "15550100002"
    async with baileys(simulator, tmp_path) as driver:
        await driver.wait_for(lambda e: bool(e.get("qr")))
        await driver.command("pair_code", phone=phone)
        code = await driver.wait_for(lambda e: e.get("ev") == "pairing_code")
        device = await simulator.enter_pairing_code(phone, str(code["code"]))
        assert device.phone == phone
        opened = await driver.wait_for(lambda e: e.get("connection") == "open")
        assert opened["me"]["id"] == device.jid
    creds = json.loads((tmp_path / "creds.json").read_text())
    assert creds["registered"] is True
    assert creds["me"]["id"] == device.jid


async def test_wrong_pairing_code_is_refused(simulator: SimulatorClient, tmp_path: Path) -> None:
    phone = "15550100003"
    async with baileys(simulator, tmp_path) as driver:
        await driver.wait_for(lambda e: bool(e.get("qr")))
        await driver.command("pair_code", phone=phone)
        code = str((await driver.wait_for(lambda e: e.get("ev") == "pairing_code"))["code"])
        wrong = ("A" if code[0] != "A" else "B") + code[1:]
        with pytest.raises(SimulatorError, match="wrong pairing code"):
            await simulator.enter_pairing_code(phone, wrong)
        device = await simulator.enter_pairing_code(phone, code)
        await driver.wait_for(lambda e: e.get("connection") == "open")
        assert device.phone == phone


async def test_phone_history_sync_and_app_state_sync_complete_on_first_login(
    simulator: SimulatorClient, tmp_path: Path
) -> None:
    """With Baileys' default history settings the phone's INITIAL_BOOTSTRAP notification and the
    empty app-state sync take the client Online (accountSyncCounter 1) without its 20 s timeout
    being the way out; a contact's message is then delivered as usual."""
    phone, contact = "15550100004", "15550109004"
    async with baileys(simulator, tmp_path, opts={"defaultHistorySync": True}) as driver:
        await pair_by_qr(simulator, driver, phone)
        history = await driver.wait_for(lambda e: e.get("ev") == "history")
        assert history["isLatest"] is True
        synced = await driver.wait_for(lambda e: e.get("ev") == "account_sync" and e.get("counter", 0) >= 1)
        assert synced["counter"] == 1
        sent = await simulator.send_from_contact(contact, phone, "after history")
        got = await driver.wait_for(lambda e: e.get("ev") == "message" and e.get("id") == sent.id)
        assert got["text"] == "after history"
