"""What a SessionManager finds on disk when it starts: the registry, adopted folders, legacy
folders dropped into the auth root. No process is started here."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.config import Settings
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.sessions.registry import Registry
from bridge.store.snapshots import Snapshots


def _manager(root: Path) -> SessionManager:
    settings = Settings(_env_file=None, auth_root=root)
    return SessionManager(settings, EventBus(), Snapshots(root))


async def test_adopted_and_legacy_folders_are_registered_stopped_and_untouched(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    (root / "legacy-a").mkdir(parents=True)
    (root / "legacy-a" / "creds.json").write_text('{"me": {"id": "1555@s.whatsapp.net"}}')
    (root / "no-creds").mkdir()
    (root / ".hidden").mkdir()
    (root / ".hidden" / "creds.json").write_text("{}")
    outside = tmp_path / "elsewhere" / "old-bot"
    outside.mkdir(parents=True)
    (outside / "creds.json").write_text("{}")
    (root / ".bridge").mkdir()
    adopted = {"version": 1, "sessions": {"old-bot": {"folder": str(outside), "adopted_at": 1.0, "snapshot": ""}}}
    (root / ".bridge" / "adopted.json").write_text(json.dumps(adopted))
    before = (root / "legacy-a" / "creds.json").read_bytes()

    manager = _manager(root)
    infos = {i.id: i for i in manager.list()}
    assert set(infos) == {"legacy-a", "old-bot"}
    assert infos["old-bot"].folder == str(outside)
    assert infos["legacy-a"].folder == str(root / "legacy-a")
    assert all(i.state == "stopped" and not i.desired_running for i in infos.values())
    assert await manager.start_all() == []  # registered, but nobody asked them to run
    assert (root / "legacy-a" / "creds.json").read_bytes() == before
    assert {r.id for r in Registry(root / ".bridge").all()} == {"legacy-a", "old-bot"}
    await manager.shutdown()


async def test_final_states_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    manager = _manager(root)
    await manager.create("was-out")
    manager.registry.update("was-out", last_state="logged_out", last_reason="logged_out")
    await manager.create("was-failed")
    manager.registry.update("was-failed", last_state="failed", last_reason="connection_replaced")
    await manager.shutdown()
    again = _manager(root)
    assert again.get("was-out").state == "logged_out"  # start() will link a new device, after a snapshot
    assert again.get("was-failed").state == "stopped"  # a restart is a fresh chance
    await again.shutdown()
