"""`python -m bridge sessions`: a real subprocess over a real auth root, read-only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bridge.sessions.registry import Registry, SessionRecord
from bridge.store.snapshots import Snapshots

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "sessions", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_lists_registry_and_disk_state_without_writing(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    registry = Registry(root / ".bridge")
    registry.put(SessionRecord(id="acme", login="pairing_code", phone="4915123456789", desired_running=True,
                               last_state="open", last_reason="open"))
    registry.put(SessionRecord(id="gone", archived=True, last_state="stopped"))
    (root / "acme").mkdir(parents=True)
    linked = {"me": {"id": "4915123456789:3@s.whatsapp.net"}, "registered": True}
    (root / "acme" / "creds.json").write_text(json.dumps(linked))
    (root / "acme" / "pre-key-1.json").write_text("{}")
    Snapshots(root).create("acme", "manual")
    (root / "legacy").mkdir()
    pre_link = {"me": {"id": "15550001111:9@s.whatsapp.net", "name": "~"}, "pairingCode": "ABCD1234"}
    (root / "legacy" / "creds.json").write_text(json.dumps(pre_link))  # a code was asked for, nothing linked
    before = _tree(root)

    result = _cli("--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {r["id"]: r for r in doc["sessions"]}
    assert set(rows) == {"acme", "legacy"}  # archived hidden by default
    acme = rows["acme"]
    assert (acme["state"], acme["desired_running"], acme["login"], acme["phone"]) == (
        "open", True, "pairing_code", "4915123456789")
    assert acme["me"] == "4915123456789:3@s.whatsapp.net" and acme["files"] == 2
    assert acme["last_snapshot_reason"] == "manual" and acme["registered_in_bridge"] is True
    assert rows["legacy"]["state"] == "unregistered" and rows["legacy"]["registered_in_bridge"] is False
    assert rows["legacy"]["me"] is None  # `me` set by a pairing-code request is no linked account
    assert _tree(root) == before  # read-only: not one byte changed, no lock file created

    everything = json.loads(_cli("--root", str(root), "--json", "--all").stdout)
    assert "gone" in {r["id"] for r in everything["sessions"]}
    table = _cli("--root", str(root))
    assert table.returncode == 0 and "acme" in table.stdout and "pairing_code" in table.stdout


def test_empty_root_and_damaged_registry(tmp_path: Path) -> None:
    empty = _cli("--root", str(tmp_path / "none"))
    assert empty.returncode == 0 and "no sessions" in empty.stdout
    (tmp_path / "auth" / ".bridge").mkdir(parents=True)
    (tmp_path / "auth" / ".bridge" / "sessions.json").write_text("{broken")
    damaged = _cli("--root", str(tmp_path / "auth"))
    assert damaged.returncode == 5 and "unreadable" in damaged.stderr
