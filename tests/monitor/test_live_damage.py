"""Damage from outside to a live session's folder, by kind and by the session's age (issue 12).

Real Baileys 7.0.0-rc14 in the bridge's Node runtime, linked to the WhatsApp simulator by QR or
by pairing code, supervised by the SessionManager, with the monitor running as inside
`python -m bridge` (and the store's default `BRIDGE_SNAPSHOT_MIN_INTERVAL` of 300 s, so a fresh
session has only the snapshots its link produced). Another process then damages the folder.

For every case: the session ends open on its own account (or, where the bridge cannot know the
right answer, stopped with exactly one incident), no intact key file is moved away, the operator
gets exactly one critical alert, and the time from the damage to open is printed. A few
representative cases run by default; the whole matrix is `slow`.

Not here: `chmod 000` and a full disk (test_storage_faults.py: they need a monitor without
CAP_DAC_OVERRIDE and a tmpfs), whole-bridge black-box faults (tests/faults/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store.identity import IdentityBook
from tests.monitor.helpers import damage, damage_going_on, make_legacy_folder, wait_event
from tests.monitor.live import (
    TIMEOUT,
    Bridge,
    bridge_with_monitor,
    exchange,
    fresh_number,
    identity,
    link_by_code,
    link_by_qr,
)
from tests.monitor.telegram_receiver import TelegramReceiver
from tests.simulator.client import SimulatorClient

AGES = ("qr-fresh", "code-fresh", "settled", "old")
DAMAGES = (
    "creds_deleted",
    "creds_truncated",
    "creds_invalid",
    "creds_unregistered",
    "creds_foreign",
    "folders_swapped",
    "keys_deleted",
    "folder_removed",
)
NEEDS_OTHER = {"creds_foreign", "folders_swapped"}
STOPS = {"creds_foreign": ("ten",), "folders_swapped": ("ten", "other")}
DEFAULT = {
    ("creds_truncated", "code-fresh"),  # issue 12 item 1: lost the identity
    ("folders_swapped", "settled"),  # issue 12 item 2: went unnoticed
    ("keys_deleted", "settled"),
    ("folder_removed", "old"),
}
SESSION = "ten"


def cases() -> Iterator[object]:
    for kind in DAMAGES:
        for age in AGES:
            marks = () if (kind, age) in DEFAULT else (pytest.mark.slow,)
            yield pytest.param(kind, age, marks=marks, id=f"{kind}-{age}")


@pytest.fixture(scope="module")
def fresh_creds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """creds.json of a fresh, never linked Baileys device (what legacy writes after a torn read)."""
    folder = tmp_path_factory.mktemp("fresh") / "device"
    make_legacy_folder(folder, 1, fresh=True)
    return folder / "creds.json"


def key_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix == ".json" and p.name != "creds.json"
            and not p.name.startswith(".")}


def trashed(bridge: Bridge, session: str) -> set[str]:
    """Original names of key files the store moved to its trash (Baileys consumed them)."""
    trash = bridge.settings.bridge_dir / "trash" / session
    return {p.name.split("-", 1)[1] for p in trash.iterdir()} if trash.is_dir() else set()


async def snapshot_event(bridge: Bridge, session: str, reason: str, after: int = 0) -> None:
    await wait_event(bridge.bus, lambda e: e.kind == "snapshot" and e.session == session
                     and e.data["reason"] == reason, within=TIMEOUT, after=after)


async def reach_age(bridge: Bridge, simulator: SimulatorClient, age: str, phone: str, mark: int) -> None:
    """Fresh: seconds after pairing, once the login burst of creds saves is over (the settled
    snapshot is set far away for these ages, so only the link's own snapshots exist). Settled: its
    settled snapshot was taken. Old: settled, then traffic wrote key files no snapshot holds."""
    if age.endswith("fresh"):
        # The monitor's first snapshot holding the linked creds (`monitor-registration`, or
        # `monitor-first` when it first looked after the link).
        await wait_event(bridge.bus, lambda e: e.kind == "snapshot" and e.session == SESSION
                         and e.data["registered"] is True, within=TIMEOUT, after=mark)
        await creds_still(bridge.settings.auth_root / SESSION, 2.0)
        return
    await snapshot_event(bridge, SESSION, "monitor-settled", mark)
    if age == "old":
        contact = fresh_number("1557")
        await simulator.create_contact(contact)
        await exchange(bridge, simulator, SESSION, phone, contact, "old")


async def creds_still(folder: Path, quiet: float) -> None:
    """Wait until creds.json has not changed for `quiet` seconds (Baileys saves it several times
    while it logs in after a link; damage in that burst is undone by its next save)."""
    deadline = time.monotonic() + TIMEOUT
    last, since = b"", time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "creds.json never stopped changing"
        now = await asyncio.to_thread((folder / "creds.json").read_bytes)
        if now != last:
            last, since = now, time.monotonic()
        await asyncio.sleep(0.1)


async def knows_account(bridge: Bridge, session: str) -> None:
    """Wait until the monitor recorded the session's linked account."""
    book = IdentityBook(bridge.settings.bridge_dir)
    deadline = time.monotonic() + TIMEOUT
    while (found := book.expected(session)) is None or found.jid is None:
        assert time.monotonic() < deadline, f"the monitor never recorded {session}'s account"
        await asyncio.sleep(0.1)


def sabotage(kind: str, root: Path, fresh_creds: Path) -> str:
    folder = root / SESSION
    return {
        "creds_deleted": f"rm {folder}/creds.json",
        "creds_truncated": f": > {folder}/creds.json",
        "creds_invalid": f"printf '{{\"pad\": \"%s\"}}' $(head -c 9000 /dev/zero | tr '\\0' x) > {folder}/creds.json",
        "creds_unregistered": f"cp {fresh_creds} {folder}/.new && mv {folder}/.new {folder}/creds.json",
        "creds_foreign": f"cp {root}/other/creds.json {folder}/.new && mv {folder}/.new {folder}/creds.json",
        "folders_swapped": f"cd {root} && mv {SESSION} x && mv other {SESSION} && mv x other",
        # The journal's worker may write a key file while rm walks the folder (rm then fails with
        # "Directory not empty" and leaves the folder partly removed, which is keys_deleted's
        # case); this case is the incident's whole folder gone, so rm runs until it is.
        "folder_removed": f"until rm -rf {folder} 2>/dev/null; do :; done",
    }[kind]


async def healed_by_its_writer(
    bridge: Bridge, kind: str, folder: Path, before: tuple[str, str], mark: int
) -> str | None:
    """Creds damage to a running session may be undone by the session itself before the monitor
    confirms it: Baileys saves creds often right after a link, and the store keeps the damaged file
    (`replace-corrupt-creds` / `creds-downgrade`) before writing the good creds over it. Then
    there is no incident and no alert; returns the store's evidence file in that case."""
    if not kind.startswith("creds_") or kind == "creds_foreign":
        return None
    deadline = time.monotonic() + bridge.settings.monitor_confirm_delay + 2 * bridge.settings.monitor_scan_interval
    while time.monotonic() < deadline:
        if [e for e in bridge.bus.since(mark) if e.kind == "incident"]:
            return None
        await asyncio.sleep(0.1)
    if [e for e in bridge.bus.since(mark) if e.kind == "incident"]:
        return None
    backups = bridge.settings.bridge_dir / "creds-backups" / SESSION
    evidence = sorted(p.name for p in backups.iterdir()) if backups.is_dir() else []
    assert identity(folder) == before and evidence, "no incident, yet creds.json was not repaired by its writer"
    return evidence[-1]


def delete_four_fifths(folder: Path) -> str:
    """80% of the key files, one `rm` each, the way a careless cleanup script would."""
    count = len(key_names(folder)) * 4 // 5
    return (f"cd {folder} && ls | grep -v '^creds.json$' | grep '[.]json$' | head -n {count} "
            "| while read f; do rm -f \"$f\"; done")


@pytest.mark.parametrize(("kind", "age"), list(cases()))
async def test_damage_to_a_live_session(
    kind: str, age: str, tmp_path: Path, simulator: SimulatorClient, telegram: TelegramReceiver, fresh_creds: Path
) -> None:
    root = tmp_path / "auth"
    root.mkdir()
    folder = root / SESSION
    settle = 60.0 if age.endswith("fresh") else 3.0
    async with bridge_with_monitor(root, simulator, telegram, snapshot_min_interval=300.0,
                                   monitor_settle_seconds=settle) as bridge:
        if kind in NEEDS_OTHER:
            await link_by_qr(bridge, simulator, "other")
            await knows_account(bridge, "other")
        mark = bridge.bus.last_seq
        phone = await (link_by_code if age == "code-fresh" else link_by_qr)(bridge, simulator, SESSION)
        await reach_age(bridge, simulator, age, phone, mark)
        await knows_account(bridge, SESSION)
        before, keys_before = identity(folder), key_names(folder)
        mark, alerts_before = bridge.bus.last_seq, len(telegram.messages)
        damaged_at = time.monotonic()
        if kind == "keys_deleted":
            async with damage_going_on(delete_four_fifths(folder)):
                incident = await wait_event(bridge.bus, lambda e: e.kind == "incident", within=TIMEOUT, after=mark)
        else:
            damage(sabotage(kind, root, fresh_creds))
            healed = await healed_by_its_writer(bridge, kind, folder, before, mark)
            if healed is not None:
                print(f"\n{kind} at {age}: the session's own creds save repaired it first ({healed}); no incident")
                await asyncio.sleep(3.0)
                assert not [e for e in bridge.bus.since(mark) if e.kind == "incident"]
                assert not [m for m in telegram.messages[alerts_before:] if "CRITICAL" in m.text]
                return
            incident = await wait_event(bridge.bus, lambda e: e.kind == "incident", within=TIMEOUT, after=mark)
        found_in = time.monotonic() - damaged_at
        data = incident.data
        if kind in STOPS:
            for sid in STOPS[kind]:
                await bridge.manager.wait_for_state(sid, {"stopped"}, TIMEOUT)
            print(f"\n{kind} at {age}: incident after {found_in:.2f} s, stopped {data['stopped']}: {data['detail']}")
            assert data["kind"] == kind and data["action"] == "stop_session" and data["creds_source"] is None
            assert sorted(data["stopped"]) == sorted(STOPS[kind]) and data["restored"] is False
        else:
            await bridge.manager.wait_for_state(SESSION, {"open"}, TIMEOUT)
            open_in = time.monotonic() - damaged_at
            # Key files written after the newest snapshot of the account cannot come back: a
            # fresh session's pre-keys (its settled snapshot comes later), an old one's newest
            # contact sessions. The incident names how many; nothing else may be missing.
            in_snapshot = ({f.name for f in bridge.snapshots.get(SESSION, data["snapshot"]).files}
                           if data["snapshot"] else set())
            lost = keys_before - in_snapshot if kind in ("keys_deleted", "folder_removed") else set()
            if kind == "keys_deleted" and not data["restored"]:
                assert "no intact snapshot" in data["error"], data
            elif kind == "keys_deleted":
                deadline = time.monotonic() + TIMEOUT
                while missing := keys_before - key_names(folder) - trashed(bridge, SESSION) - lost:
                    assert time.monotonic() < deadline, f"{len(missing)} not put back, e.g. {sorted(missing)[:5]}"
                    await asyncio.sleep(0.2)
            if lost - key_names(folder):
                assert data["warning"] or data["error"], "key files were lost without saying so"
            print(f"\n{kind} at {age}: {data['action']} after {found_in:.2f} s, open {open_in:.2f} s after the "
                  f"damage (left open: {not data['stopped']}); keys {data['keys_before']} -> {data['keys_after']}"
                  + (f"; warning: {data['warning']}" if data["warning"] else ""))
            assert data["restored"] is True or (kind == "keys_deleted" and not in_snapshot), data
            assert identity(folder) == before  # its own account, no new QR
            assert not [e for e in bridge.bus.since(mark, SESSION) if e.kind in ("qr", "session.qr")]
            # Nothing intact moved away: every key file is back, in the store's trash (Baileys
            # consumed it), or one the incident said was in no snapshot.
            assert keys_before - key_names(folder) - trashed(bridge, SESSION) - lost == set()
            contact = fresh_number("1557")
            await simulator.create_contact(contact)
            if lost:
                # A new contact's first message may use one of the lost pre-keys: check the way out.
                sent = await bridge.manager.send_text(SESSION, contact, "after, outbound")
                await simulator.wait_inbox(contact, lambda m: m.id == sent.id, TIMEOUT)
            else:
                await exchange(bridge, simulator, SESSION, phone, contact, "after")
        await telegram.wait_for(alerts_before + 1)
        await asyncio.sleep(3.0)  # room for a second alert (a follow-on state) to show up
        incidents = [e for e in bridge.bus.since(mark) if e.kind == "incident"]
    criticals = [m.text for m in telegram.messages[alerts_before:] if "CRITICAL" in m.text]
    assert incidents == [incident]
    assert len(criticals) == 1 and data["kind"] in criticals[0], criticals
