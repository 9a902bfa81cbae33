"""Adopting a legacy useMultiFileAuthState folder in place: no copy, no rewrite, a first snapshot.

The headline scenario of the issue: a folder made by real legacy Baileys is adopted, snapshotted,
`rm -rf`ed, restored, and real Baileys loads identical values from it again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import msgspec
import pytest

from bridge.errors import SnapshotError
from bridge.store.adopt import Registration, adopt, read_adopted, registration_for, scan, session_folder
from bridge.store.snapshots import Snapshots
from tests.store.test_snapshots import dump_legacy, folder_bytes, make_legacy


def _age(folder: Path, seconds: float = 600.0) -> None:
    """Make a folder look idle: what a legacy folder nobody wrote for ten minutes looks like."""
    past = time.time() - seconds
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (past, past))


def _fingerprint(folder: Path) -> dict[str, tuple[bytes, int, float, int]]:
    """Bytes, inode, mtime and mode of every file: adopting must change none of them."""
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime, p.stat().st_mode) for p in sorted(folder.iterdir())
    }


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    folder = tmp_path / "old-node-app" / "auth_info_baileys"
    make_legacy(folder)
    _age(folder)
    return folder


def test_adopt_snapshot_rm_rf_restore_real_baileys_reads_identical_values(root: Path, legacy: Path) -> None:
    before = dump_legacy(legacy)
    original = folder_bytes(legacy)
    snaps = Snapshots(root)

    result = adopt(snaps, legacy, "tenant1")
    assert result.external and result.state.registered
    snaps.create("tenant1", reason="manual")
    shutil.rmtree(legacy)

    outcome = snaps.restore_detailed("tenant1", result.snapshot)

    assert outcome.folder == str(legacy)
    assert folder_bytes(legacy) == original
    assert dump_legacy(legacy) == before


def test_adopt_writes_nothing_in_the_legacy_folder(root: Path, legacy: Path) -> None:
    fingerprint = _fingerprint(legacy)
    folder_mtime = legacy.stat().st_mtime
    snaps = Snapshots(root)

    result = adopt(snaps, legacy, "tenant1")

    assert _fingerprint(legacy) == fingerprint
    assert legacy.stat().st_mtime == folder_mtime
    assert not (root / "tenant1").exists()
    assert read_adopted(root).sessions["tenant1"].folder == str(legacy.resolve())
    assert read_adopted(root).sessions["tenant1"].snapshot == result.snapshot
    assert session_folder(root, "tenant1") == legacy.resolve()
    manifest = snaps.get("tenant1", result.snapshot)
    assert manifest.reason == "adopt" and manifest.registered
    assert {f.name for f in manifest.files} == set(fingerprint)
    assert result.state.keys == {"app-state-sync-key": 1, "lid-mapping": 1, "pre-key": 5, "sender-key": 1, "session": 1}


def test_adopt_refuses_a_recently_written_folder_unless_forced(root: Path, legacy: Path) -> None:
    os.utime(legacy / "creds.json")  # a legacy process just saved creds
    snaps = Snapshots(root)
    with pytest.raises(SnapshotError, match=r"modified .* ago") as info:
        adopt(snaps, legacy, "tenant1")
    assert info.value.code == "adopt_refused"
    assert read_adopted(root).sessions == {}
    assert snaps.list("tenant1") == []

    result = adopt(snaps, legacy, "tenant1", force=True)
    assert snaps.list("tenant1")[0].id == result.snapshot


def test_adopt_refuses_a_folder_without_valid_creds(root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "creds.json").write_text('{"noiseKey": null}')
    _age(folder)
    with pytest.raises(SnapshotError, match="no usable creds"):
        adopt(Snapshots(root), folder, "tenant1")


def test_adopt_refuses_a_session_id_already_used_by_another_folder(root: Path, legacy: Path, tmp_path: Path) -> None:
    snaps = Snapshots(root)
    adopt(snaps, legacy, "tenant1")
    other = tmp_path / "other"
    shutil.copytree(legacy, other)
    _age(other)
    with pytest.raises(SnapshotError, match="already adopted"):
        adopt(snaps, other, "tenant1")
    (root / "tenant2").mkdir()
    with pytest.raises(SnapshotError, match="already has a folder"):
        adopt(snaps, other, "tenant2")
    assert set(read_adopted(root).sessions) == {"tenant1"}

    again = adopt(snaps, legacy, "tenant1")
    assert len(snaps.list("tenant1")) == 2 and again.external


def test_adopt_a_folder_already_in_the_auth_root_records_no_external_path(root: Path) -> None:
    folder = root / "tenant3"
    make_legacy(folder)
    _age(folder)
    result = adopt(Snapshots(root), folder, "tenant3")
    assert not result.external
    assert read_adopted(root).sessions == {}
    assert registration_for(result) == Registration(id="tenant3", folder=None)


def test_registration_for_an_external_folder_names_it(root: Path, legacy: Path) -> None:
    result = adopt(Snapshots(root), legacy, "tenant1")
    registration = registration_for(result)
    assert registration == Registration(id="tenant1", folder=str(legacy.resolve()), login="qr", desired_running=False)
    assert msgspec.structs.asdict(registration)["folder"] == str(legacy.resolve())


def test_scan_lists_candidates_with_state_and_key_counts(tmp_path: Path) -> None:
    area = tmp_path / "legacy-root"
    make_legacy(area / "alice", pre_keys=3)
    make_legacy(area / "bob", pre_keys=2, registered=False)
    (area / "carol").mkdir()
    (area / "carol" / "creds.json").write_text("{")
    (area / "not-a-session").mkdir()
    (area / "not-a-session" / "notes.txt").write_text("hello")

    found = {f.name: f for f in scan(area)}

    assert set(found) == {"alice", "bob", "carol"}
    assert found["alice"].registered and found["alice"].me == "15550001111:7@s.whatsapp.net"
    assert found["alice"].keys["pre-key"] == 3
    assert found["bob"].creds_ok and not found["bob"].registered and found["bob"].keys["pre-key"] == 2
    assert not found["carol"].creds_ok and "not valid JSON" in found["carol"].problem


SHM = Path("/dev/shm")


@pytest.mark.skipif(
    not SHM.is_dir() or not os.access(SHM, os.W_OK), reason="needs a second file system (/dev/shm) to adopt from"
)
def test_restore_of_a_folder_adopted_from_another_file_system(root: Path, tmp_path: Path) -> None:
    base = SHM / f"bridge-adopt-test-{os.getpid()}-{tmp_path.name}"
    legacy = base / "auth_info"
    try:
        make_legacy(legacy)
        _age(legacy)
        assert os.stat(legacy).st_dev != os.stat(root).st_dev
        before = dump_legacy(legacy)
        snaps = Snapshots(root)
        result = adopt(snaps, legacy, "remote")
        (legacy / "creds.json").write_text("{}")  # damaged in place

        outcome = snaps.restore_detailed("remote", result.snapshot)

        assert dump_legacy(legacy) == before
        assert outcome.replaced_path is not None
        assert Path(outcome.replaced_path).parent == base / ".bridge-replaced"
        assert (Path(outcome.replaced_path) / "creds.json").read_text() == "{}"
        assert not list((base / ".bridge-staging").iterdir())
    finally:
        shutil.rmtree(base, ignore_errors=True)
