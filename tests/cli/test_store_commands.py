"""The operator commands, run as a real `python -m bridge` process: output and exit codes.

Exit codes (docs/operations.md): 0 ok, 1 check failed, 2 usage, 3 refused for safety,
4 not found, 5 other store error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import PROJECT_ROOT
from bridge.store.journal import Journal, Materialise, Target, journal_folder
from bridge.store.layout import key_file_name
from bridge.store.snapshots import Snapshots
from tests.store.test_snapshots import dump_legacy, folder_bytes, make_legacy

CLI_TIMEOUT = 120.0
COMMANDS = (
    "snapshot", "snapshots", "verify", "restore", "prune", "backup", "adopt", "checkpoint", "set-aside-journal",
    "prune-trash",
)


def bridge(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m bridge ARGS [--root ROOT]` and return the finished process."""
    extra = ["--root", str(root)] if root is not None else []
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args, *extra],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=env,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "auth"
    make_legacy(path / "acme")
    yield path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_exit_codes(command: str) -> None:
    proc = bridge(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--json" in proc.stdout and "--root" in proc.stdout
    assert "3 refused for safety" in proc.stdout


def test_snapshot_list_verify_and_json_output(root: Path) -> None:
    made = bridge("snapshot", "acme", "--json", root=root)
    assert made.returncode == 0, made.stderr
    snap = as_json(made)
    assert snap["session"] == "acme" and snap["registered"] is True

    human = bridge("snapshots", root=root)
    assert human.returncode == 0 and snap["id"] in human.stdout and "dedup ratio" in human.stdout
    listing = as_json(bridge("snapshots", "acme", "--json", root=root))
    assert [m["id"] for m in listing["sessions"]["acme"]] == [snap["id"]]

    checked = bridge("verify", "--json", root=root)
    assert checked.returncode == 0 and as_json(checked)["ok"] is True


def test_corrupt_object_makes_verify_exit_1_naming_it_and_restore_refuse(root: Path) -> None:
    snap = as_json(bridge("snapshot", "acme", "--json", root=root))
    sha = next(f["sha256"] for f in snap["files"] if f["name"] == "creds.json")
    obj = root / ".bridge" / "objects" / sha[:2] / sha
    os.chmod(obj, 0o644)
    obj.write_bytes(obj.read_bytes()[:-1] + b"!")
    current = folder_bytes(root / "acme")

    checked = bridge("verify", root=root)
    assert checked.returncode == 1
    assert f"CORRUPT {obj}" in checked.stdout

    refused = bridge("restore", "acme", snap["id"], root=root)
    assert refused.returncode == 1
    assert str(obj) in refused.stderr
    assert folder_bytes(root / "acme") == current

    no_good = bridge("restore", "acme", root=root)
    assert no_good.returncode == 4


def test_restore_brings_back_a_removed_folder(root: Path) -> None:
    before = dump_legacy(root / "acme")
    assert bridge("snapshot", "acme", root=root).returncode == 0
    shutil.rmtree(root / "acme")
    restored = bridge("restore", "acme", "--json", root=root)
    assert restored.returncode == 0, restored.stderr
    assert as_json(restored)["folder"] == str(root / "acme")
    assert dump_legacy(root / "acme") == before


def test_restore_refuses_while_a_bridge_holds_the_session_lock(root: Path) -> None:
    assert bridge("snapshot", "acme", root=root).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bridge.store.lock import SessionLock\n"
            "with SessionLock(Path(sys.argv[1]), 'acme'):\n    print('locked', flush=True); sys.stdin.read()",
            str(root / ".bridge"),
        ],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        refused = bridge("restore", "acme", "--json", root=root)
        assert refused.returncode == 3
        assert as_json(refused)["error"]["code"] == "session_locked"
        assert f"pid {holder.pid}" in refused.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        assert holder.stdout is not None
        holder.stdout.close()
    assert bridge("restore", "acme", root=root).returncode == 0


def test_usage_and_not_found_exit_codes(root: Path) -> None:
    assert bridge("snapshot", "../evil", root=root).returncode == 2
    assert bridge("snapshot", "ghost", root=root).returncode == 4
    assert bridge("restore", "acme", "nosuchsnapshot", root=root).returncode == 4
    assert bridge("verify", "ghost", root=root).returncode == 4
    assert bridge("verify", "--archive", str(root / "none.tar.gz"), root=root).returncode == 4
    assert bridge("prune", "--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "0", root=root).returncode == 2
    assert bridge("snapshot", root=root).returncode == 2  # argparse: session missing


def test_a_broken_auth_root_is_a_store_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "auth"
    not_a_folder.write_text("oops")
    proc = bridge("snapshot", "acme", "--json", root=not_a_folder)
    assert proc.returncode == 5
    assert as_json(proc)["exit_code"] == 5 and str(not_a_folder) in proc.stderr


def test_prune_keeps_registered_snapshots_unless_forced(root: Path) -> None:
    for _ in range(3):
        assert bridge("snapshot", "acme", root=root).returncode == 0
    args = ("prune", "acme", "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0", "--json")
    kept = as_json(bridge(*args, root=root))[0]
    assert kept["removed"] == [] and len(kept["protected"]) == 2
    forced = as_json(bridge(*args, "--force", root=root))[0]
    assert len(forced["removed"]) == 2
    assert len(Snapshots(root).list("acme")) == 1


def test_backup_verify_archive_and_tamper_refusal(root: Path, tmp_path: Path) -> None:
    made = bridge("backup", "--snapshot-first", "--to", str(tmp_path / "bk"), "--json", root=root)
    assert made.returncode == 0, made.stderr
    archive = Path(as_json(made)["archive"])
    assert bridge("verify", "--archive", str(archive), root=root).returncode == 0

    new_root = tmp_path / "new-machine"
    restored = bridge("restore", "acme", "--archive", str(archive), root=new_root)
    assert restored.returncode == 0, restored.stderr
    assert folder_bytes(new_root / "acme") == folder_bytes(root / "acme")

    os.chmod(archive, 0o644)
    data = bytearray(archive.read_bytes())
    data[-10] ^= 0x55
    archive.write_bytes(bytes(data))
    checked = bridge("verify", "--archive", str(archive), root=root)
    assert checked.returncode == 1 and "does not match its checksum file" in checked.stdout
    refused = bridge("restore", "acme", "--archive", str(archive), root=tmp_path / "third")
    assert refused.returncode == 1 and "refusing backup" in refused.stderr
    assert not (tmp_path / "third" / "acme").exists()


def test_adopt_scan_and_quiet_period(root: Path, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy" / "tenant-a"
    make_legacy(legacy)

    scanned = bridge("adopt", "--scan", str(tmp_path / "legacy"), "--json", root=root)
    assert scanned.returncode == 0
    assert [(f["name"], f["registered"]) for f in as_json(scanned)] == [("tenant-a", True)]

    recent = bridge("adopt", str(legacy), "--session", "tenant-a", root=root)
    assert recent.returncode == 3 and "--force" in recent.stderr

    past = time.time() - 120
    for path in [legacy, *legacy.iterdir()]:
        os.utime(path, (past, past))
    adopted = bridge("adopt", str(legacy), "--session", "tenant-a", "--json", root=root)
    assert adopted.returncode == 0, adopted.stderr
    result = as_json(adopted)
    assert result["external"] is True
    assert result["registration"] == {
        "id": "tenant-a",
        "folder": str(legacy.resolve()),
        "login": "qr",
        "desired_running": False,
    }
    assert bridge("verify", "tenant-a", root=root).returncode == 0


def test_prune_trash_command(root: Path) -> None:
    trash = root / ".bridge" / "trash" / "acme"
    trash.mkdir(parents=True)
    (trash / "1000000000000000000-pre-key-1.json").write_text("{}")
    proc = bridge("prune-trash", "--older-than", "1", "--json", root=root)
    assert proc.returncode == 0
    assert as_json(proc)["removed"] == [str(trash / "1000000000000000000-pre-key-1.json")]
    assert not list(trash.iterdir())


def _crashed_journal(root: Path, value: bytes) -> str:
    """Session acme's journal holding one acknowledged batch its folder never got; the key's file name."""
    name = key_file_name("session", "4915.0")
    bridge_dir = root / ".bridge"
    target = Target(folder=root / "acme", trash_dir=bridge_dir / "trash" / "acme")
    journal = Journal(journal_folder(bridge_dir, "acme"), lambda _s: target, materialise=Materialise.DEFERRED)
    journal.commit("acme", {name: value}, [])
    journal.log.close()  # as if the bridge died before writing the file
    return name


def test_checkpoint_writes_a_crashed_journal_into_the_folder_for_legacy_readers(root: Path) -> None:
    name = _crashed_journal(root, b'{"gen":3}')
    assert not (root / "acme" / name).exists()
    proc = bridge("checkpoint", "acme", "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["replayed"] == 1
    assert (root / "acme" / name).read_bytes() == b'{"gen":3}'
    assert dump_legacy(root / "acme")["keys"][name] == {"gen": 3}, "plain Baileys reads it"
    again = bridge("checkpoint", "acme", root=root)
    assert again.returncode == 0 and "0 batch(es) replayed" in again.stdout


def test_set_aside_journal_keeps_it_and_the_folder_unchanged(root: Path) -> None:
    name = _crashed_journal(root, b'{"gen":4}')
    proc = bridge("set-aside-journal", "acme", "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    parked = Path(as_json(proc)["set_aside"])
    assert parked.parent == root / ".bridge" / "journal-set-aside" and any(parked.glob("*.wal"))
    assert not (root / "acme" / name).exists()
    missing = bridge("set-aside-journal", "acme", root=root)
    assert missing.returncode == 4 and "no journal" in missing.stderr
