"""Repair primitives: put back creds alone, or restore a folder knowing how many keys it costs.

Folders are written by real Baileys (legacy useMultiFileAuthState) and read back by it; damage is
done by another process (`truncate`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bridge.errors import CredsCorruptError, SnapshotError, StoreError
from bridge.store.auth_store import AuthStore
from bridge.store.identity import identity_of
from bridge.store.snapshots import Snapshots
from tests.store.test_snapshots import dump_legacy, make_legacy


def _keys(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and inode of every key file: a creds repair must change none of them."""
    return {p.name: (p.read_bytes(), p.stat().st_ino) for p in sorted(folder.iterdir()) if p.name != "creds.json"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "auth"
    make_legacy(path / "acme", pre_keys=8)
    return path


def _store(root: Path) -> AuthStore:
    return AuthStore(root / "acme", session_id="acme", bridge_dir=root / ".bridge")


def test_truncated_creds_are_put_back_alone_and_real_baileys_loads_the_same_account(root: Path) -> None:
    folder = root / "acme"
    before = dump_legacy(folder)
    keys = _keys(folder)
    store = _store(root)
    saved = json.dumps(dict(json.loads(store.load_creds() or ""), accountSyncCounter=9))
    store.save_creds(saved)

    subprocess.run(["truncate", "-s", "50", str(store.creds_path)], check=True)
    with pytest.raises(CredsCorruptError):
        store.load_creds()
    found = Snapshots(root).newest_intact_creds("acme", identity_of(json.loads(saved)))
    assert found is not None and found[0] == saved
    evidence = store.restore_creds(found[0], reason="monitor-creds-repair")

    assert store.load_creds() == saved
    assert _keys(folder) == keys, "no key file was rewritten, moved or replaced"
    assert evidence is not None and evidence.read_bytes() == saved.encode()[:50]
    assert "monitor-creds-repair" in evidence.name
    after = dump_legacy(folder)
    assert after["keys"] == before["keys"]
    assert after["creds"]["signedIdentityKey"] == before["creds"]["signedIdentityKey"]
    assert store.restore_creds(saved, reason="again") is None, "nothing to repair: nothing written"


def test_restore_creds_refuses_unusable_creds_and_strange_reasons(root: Path) -> None:
    store = _store(root)
    original = store.creds_path.read_bytes()
    with pytest.raises(CredsCorruptError):
        store.restore_creds("{}", reason="repair")
    with pytest.raises(StoreError, match="reason"):
        store.restore_creds(original.decode(), reason="../x")
    assert store.creds_path.read_bytes() == original


def test_a_restore_reports_and_can_refuse_losing_key_files_of_the_same_account(root: Path) -> None:
    snaps = Snapshots(root)
    older = snaps.create("acme", reason="scheduled")
    store = _store(root)
    store.set_keys({"pre-key": {str(100 + i): json.dumps({"k": i}) for i in range(5)}})
    folder_before = _keys(root / "acme")

    with pytest.raises(SnapshotError) as err:
        snaps.restore_detailed("acme", older.id, refuse_fewer_keys=True)
    assert err.value.code == "restore_loses_keys"
    assert "same account" in str(err.value)
    assert _keys(root / "acme") == folder_before, "a refused restore changes nothing"

    outcome = snaps.restore_detailed("acme", older.id)
    assert (outcome.keys_before, outcome.keys_after) == (len(folder_before), len(folder_before) - 5)


def test_fewer_keys_of_another_account_do_not_block_a_restore(root: Path, tmp_path: Path) -> None:
    snaps = Snapshots(root)
    mine = snaps.create("acme", reason="scheduled")
    make_legacy(tmp_path / "stranger", pre_keys=30)
    subprocess.run(["sh", "-c", f"cp {tmp_path / 'stranger'}/* {root / 'acme'}/"], check=True)  # a wrong cp
    outcome = snaps.restore_detailed("acme", mine.id, refuse_fewer_keys=True)
    assert outcome.keys_after < outcome.keys_before
    assert (root / "acme" / "creds.json").read_bytes() == snaps.read_object(
        next(f.sha256 for f in mine.files if f.name == "creds.json")
    )
