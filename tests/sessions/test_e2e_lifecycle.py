"""Logout, re-linking, messages, runtime crashes and crash loops, through the bridge."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from bridge.errors import HostileNameError, NodeRuntimeError, SessionError, SessionNotFound, SessionStateError
from bridge.events import EventBus
from bridge.store.identity import IdentityBook, identity_of
from bridge.store.snapshots import Snapshots
from tests.sessions.conftest import MakeManager, fresh_phone
from tests.sessions.helpers import TIMEOUT, files_of, kept, link, trashed, wait_event
from tests.simulator.client import SimulatorClient


async def test_api_logout_snapshots_first_keeps_files_and_relinking_starts_fresh_creds_after_it(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    phone = await link(manager, simulator, "out")
    folder = manager.settings.auth_root / "out"
    before = files_of(folder)
    old_me = json.loads(before["creds.json"])["me"]["id"]

    info = await manager.logout("out")
    assert info.state == "logged_out" and info.desired_running is False and info.pid is None
    after = files_of(folder)
    missing = kept(before, folder, manager.settings.bridge_dir / "trash" / "out")
    assert not missing, f"files disappeared (neither in the folder nor in the trash): {missing}"
    assert json.loads(after["creds.json"])["me"]["id"] == old_me  # nothing rewrote the creds
    snapshots = Snapshots(manager.settings.auth_root)
    [logout_snap] = snapshots.list("out")
    assert logout_snap.reason == "logout" and logout_snap.registered
    gone = trashed(manager.settings.bridge_dir / "trash" / "out")  # consumed pre-keys Baileys deleted
    assert set(before) - gone <= {f.name for f in logout_snap.files}
    with pytest.raises(SessionStateError):
        await manager.logout("out")  # not open any more

    # Linking again: fresh creds in the same folder, only after the registered snapshot exists.
    seq = bus.last_seq
    await manager.start("out")
    await manager.wait_for_state("out", {"qr"}, TIMEOUT)
    code = await manager.request_pairing_code("out", phone)
    await simulator.enter_pairing_code(phone, code)
    await manager.wait_for_state("out", {"open"}, TIMEOUT)
    new_me = json.loads((folder / "creds.json").read_text())["me"]["id"]
    assert new_me != old_me
    snaps = snapshots.list("out")  # newest first
    reasons = [s.reason for s in reversed(snaps)]
    assert reasons[0] == "logout" and "creds-downgrade" in reasons
    downgrade = next(s for s in snaps if s.reason == "creds-downgrade")
    assert downgrade.registered and downgrade.created_at >= logout_snap.created_at
    assert next(e.data["state"] for e in bus.since(seq, "out") if e.kind == "state") == "starting"
    # The deliberate relink recorded the new identity: the session starts again on it.
    book = IdentityBook(manager.settings.bridge_dir)
    assert book.expected("out") == identity_of(json.loads((folder / "creds.json").read_text()))
    await manager.stop("out")
    await manager.start("out")
    await manager.wait_for_state("out", {"open"}, TIMEOUT)


async def test_messages_out_and_in(make_manager: MakeManager, simulator: SimulatorClient) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    phone = await link(manager, simulator, "talk")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    message_id = await manager.send_text("talk", contact, "hello from the bridge")
    assert message_id.id and message_id.persisted and message_id.server_ack
    got = await simulator.wait_inbox(contact, lambda m: m.text == "hello from the bridge", TIMEOUT)
    assert got.id == message_id.id
    second = await manager.send_text("talk", f"{contact}@s.whatsapp.net", "by jid")
    await simulator.wait_inbox(contact, lambda m: m.id == second.id, TIMEOUT)

    seq = bus.last_seq
    await simulator.send_from_contact(contact, phone, "hi bridge")
    event = await wait_event(bus, seq, lambda e: e.kind == "message" and e.data["text"] == "hi bridge")
    assert event.session == "talk" and event.data["from_me"] is False and contact in str(event.data["sender"])


async def test_send_and_logout_refuse_sessions_that_are_not_open(make_manager: MakeManager) -> None:
    manager = make_manager()
    await manager.create("idle")
    with pytest.raises(SessionStateError, match="not open"):
        await manager.send_text("idle", "4915123456789", "x")
    with pytest.raises(SessionError, match="invalid recipient"):
        await manager.send_text("idle", "not a number", "x")
    with pytest.raises(SessionStateError):
        await manager.logout("idle")
    with pytest.raises(SessionNotFound):
        manager.get("nobody")
    with pytest.raises(SessionError, match="digits only"):
        await manager.request_pairing_code("idle", "0151 2345")
    with pytest.raises(SessionStateError, match="already exists"):
        await manager.create("idle")
    with pytest.raises(HostileNameError):
        await manager.create("../escape")


async def test_a_killed_runtime_is_restarted_and_the_session_reopens(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    await link(manager, simulator, "crash")
    pid = manager.get("crash").pid
    assert pid is not None
    seq = bus.last_seq
    os.kill(pid, signal.SIGKILL)
    exited = await wait_event(bus, seq, lambda e: e.session == "crash" and e.kind == "state")
    assert exited.data["state"] == "reconnecting" and str(exited.data["reason"]).startswith("runtime_exited")
    info = await manager.wait_for_state("crash", {"open"}, TIMEOUT)
    assert info.pid is not None and info.pid != pid and info.restarts == 1


async def test_a_restarted_runtime_sends_again_without_ipc_violations(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    manager = make_manager()
    await link(manager, simulator, "resend")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    first = await manager.send_text("resend", contact, "before the crash")
    await simulator.wait_inbox(contact, lambda m: m.id == first.id, TIMEOUT)
    pid = manager.get("resend").pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await manager.wait_for_state("resend", {"reconnecting"}, TIMEOUT)
    await manager.wait_for_state("resend", {"open"}, TIMEOUT)
    second = await manager.send_text("resend", contact, "after the crash")
    await simulator.wait_inbox(contact, lambda m: m.id == second.id, TIMEOUT)
    slot = manager.runtimes.slot_of("resend")
    assert slot is not None and slot.process.violations == 0


async def test_a_runtime_crash_loop_fails_the_session_with_a_critical_alert(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-runtime"
    broken.mkdir()
    (broken / "index.mjs").write_text("process.exit(3)\n")
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus, node_runtime_dir=broken, crash_loop_exits=2, crash_loop_window=120.0)
    await manager.create("loop")
    await manager.start("loop")
    info = await manager.wait_for_state("loop", {"failed"}, TIMEOUT)
    assert info.reason == "runtime_fatal"
    alerts = [e.data for e in bus.since(0, "loop") if e.kind == "alert"]
    # the runtime's own crash-loop alert (named after the runtime) and the session's
    assert ("runtime_fatal", "critical") in [(a["alert"], a["severity"]) for a in alerts]
    assert not (manager.settings.auth_root / "loop" / "creds.json").exists()  # nothing invented


async def test_stopped_sessions_stay_stopped_after_a_restart_and_archive_keeps_files(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    manager = make_manager()
    await link(manager, simulator, "keep")
    await link(manager, simulator, "rest")
    await manager.stop("rest")
    await manager.shutdown()
    again = make_manager()
    assert await again.start_all() == ["keep"]
    assert again.get("rest").state == "stopped"
    await again.wait_for_state("keep", {"open"}, TIMEOUT)
    before = files_of(again.settings.auth_root / "keep")
    info = await again.archive("keep")
    assert info.archived and info.state == "stopped"
    assert [i.id for i in again.list()] == ["rest"]
    assert set(before) <= set(files_of(again.settings.auth_root / "keep"))
    assert Snapshots(again.settings.auth_root).list("keep")[0].reason == "archive"
    with pytest.raises(SessionStateError, match="archived"):
        await again.start("keep")


async def test_a_session_runs_in_one_bridge_only(make_manager: MakeManager, simulator: SimulatorClient) -> None:
    first = make_manager()
    await first.create("solo")
    await first.start("solo")
    await first.wait_for_state("solo", {"qr"}, TIMEOUT)
    bus = EventBus(capacity=10_000)
    second = make_manager(bus)  # a second bridge instance over the same auth root
    await second.start("solo")
    info = await second.wait_for_state("solo", {"failed"}, TIMEOUT)
    assert info.reason == "start_refused" and info.pid is None
    alerts = [e.data for e in bus.since(0, "solo") if e.kind == "alert"]
    assert [a["alert"] for a in alerts] == ["start_refused"] and "lock" in str(alerts[0]["message"])
    assert first.get("solo").state == "qr"  # the running one is untouched


async def test_restore_only_while_inactive_then_the_restored_creds_come_back_open(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    manager = make_manager()
    await link(manager, simulator, "back")
    me = manager.get("back").me
    snapshots = Snapshots(manager.settings.auth_root)
    snap = snapshots.create("back", "manual")
    with pytest.raises(SessionStateError, match="stop it"):
        await manager.restore("back", snap.id)
    await manager.stop("back")
    restored = await manager.restore("back", snap.id)
    assert restored.id == snap.id and manager.get("back").state == "stopped"
    await manager.start("back")
    info = await manager.wait_for_state("back", {"open"}, TIMEOUT)
    assert info.me == me


async def test_send_answers_only_after_the_server_ack_and_fails_clearly_without_one(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    manager = make_manager(send_ack_timeout=2.0)
    phone = await link(manager, simulator, "acked")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    first = await manager.send_text("acked", contact, "acked by the server")
    await simulator.wait_inbox(contact, lambda m: m.id == first.id, TIMEOUT)
    await simulator.fault("stall", phone=phone)  # the server goes silent: no ack will come
    with pytest.raises(NodeRuntimeError) as failure:
        await manager.send_text("acked", contact, "never acked")
    assert failure.value.code == "no_server_ack"
    assert "no server ack" in failure.value.message
    assert "within 2000 ms" in failure.value.message  # BRIDGE_SEND_ACK_TIMEOUT reached the runtime


async def test_a_linked_session_whose_folder_was_removed_while_stopped_starts_with_its_old_identity(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    await link(manager, simulator, "vanished")
    folder = manager.settings.auth_root / "vanished"
    me = json.loads((folder / "creds.json").read_text())["me"]["id"]
    await manager.stop("vanished")
    Snapshots(manager.settings.auth_root).create("vanished", "manual")
    mark = bus.last_seq
    subprocess_rm = await asyncio.create_subprocess_exec("rm", "-rf", str(folder))  # the legacy incident
    assert await subprocess_rm.wait() == 0 and not folder.exists()

    await manager.start("vanished")
    await manager.wait_for_state("vanished", {"open"}, TIMEOUT)
    assert json.loads((folder / "creds.json").read_text())["me"]["id"] == me
    kinds = [e.kind for e in bus.since(mark, "vanished")]
    assert "qr" not in kinds and "pairing_code" not in kinds  # no new link was ever offered
    alerts = [e.data for e in bus.since(mark, "vanished") if e.kind == "alert"]
    assert [a["alert"] for a in alerts] == ["creds_missing_restored"]
    assert alerts[0]["severity"] == "critical"
