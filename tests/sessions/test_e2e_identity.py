"""Identity: a session records which WhatsApp account it holds when it links, and refuses to start
on another account's creds (swapped or copied folders): real Baileys, the simulator, real files."""

from __future__ import annotations

import json
import os

from bridge.events import EventBus
from bridge.store.identity import IdentityBook, identity_of
from tests.sessions.conftest import MakeManager
from tests.sessions.helpers import TIMEOUT, files_of, link
from tests.simulator.client import SimulatorClient


async def test_swapped_folders_refuse_both_sessions_with_one_alert_naming_the_other_and_change_nothing(
    make_manager: MakeManager, simulator: SimulatorClient
) -> None:
    bus = EventBus(capacity=10_000)
    manager = make_manager(bus)
    await link(manager, simulator, "alice")
    await link(manager, simulator, "bob")
    root = manager.settings.auth_root
    book = IdentityBook(manager.settings.bridge_dir)
    for sid in ("alice", "bob"):
        recorded = book.expected(sid)
        assert recorded == identity_of(json.loads((root / sid / "creds.json").read_text()))
        assert recorded is not None and recorded.jid  # recorded when it linked
    await manager.stop("alice")
    await manager.stop("bob")
    os.rename(root / "alice", root / "swap")
    os.rename(root / "bob", root / "alice")
    os.rename(root / "swap", root / "bob")
    before = {sid: files_of(root / sid) for sid in ("alice", "bob")}
    mark = bus.last_seq

    for sid in ("alice", "bob"):
        await manager.start(sid)
        info = await manager.wait_for_state(sid, {"failed"}, TIMEOUT)
        assert info.reason == "identity_mismatch" and info.pid is None

    alerts = [e for e in bus.since(mark) if e.kind == "alert"]
    assert len(alerts) == 1, [a.data for a in alerts]
    assert alerts[0].data["alert"] == "identity_mismatch" and alerts[0].data["severity"] == "critical"
    assert "'bob'" in alerts[0].data["message"]  # names the session whose creds alice's folder holds
    assert {sid: files_of(root / sid) for sid in ("alice", "bob")} == before  # nothing overwritten
    assert book.expected("alice") != book.expected("bob")
