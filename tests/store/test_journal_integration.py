"""The journal under the store's other operations: snapshot, restore and adopt see what was acknowledged.

Every operation that reads a session folder as a whole checkpoints the session's journal first
(the one open in this process when the session runs here), and refuses while another process
holds it, so none of them can miss an acknowledged batch or replay a stale one over newer files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import PROJECT_ROOT
from bridge.store.adopt import adopt
from bridge.store.auth_store import AuthStore
from bridge.store.journal import (
    Journal,
    JournalBusyError,
    Materialise,
    Target,
    has_records,
    journal_folder,
    open_session_backend,
)
from bridge.store.layout import key_file_name
from bridge.store.snapshots import Snapshots
from tests.store.test_snapshots import make_legacy

KEY = key_file_name("session", "491511.0")


def _crashed_journal(bridge_dir: Path, session_id: str, folder: Path, value: bytes) -> None:
    """A journal holding one acknowledged batch that never reached the files (the process died)."""
    target = Target(folder=folder, trash_dir=bridge_dir / "trash" / session_id)
    journal = Journal(journal_folder(bridge_dir, session_id), lambda _s: target, materialise=Materialise.DEFERRED)
    journal.commit(session_id, {KEY: value}, [])
    journal.log.close()


def _entry_sha(snapshots: Snapshots, session_id: str, snapshot_id: str, name: str) -> str | None:
    manifest = next(m for m in snapshots.list(session_id) if m.id == snapshot_id)
    entry = manifest.entry(name)
    return None if entry is None else entry.sha256


@pytest.fixture()
def legacy_root(tmp_path: Path) -> Path:
    root = tmp_path / "auth"
    make_legacy(root / "s1", pre_keys=3)
    return root


@pytest.fixture()
def running_store(legacy_root: Path) -> Iterator[AuthStore]:
    """A store of `s1` whose files lag behind its journal (materialised only at checkpoint)."""
    bridge_dir = legacy_root / ".bridge"
    folder = legacy_root / "s1"
    trash = bridge_dir / "trash" / "s1"
    backend = open_session_backend(bridge_dir, "s1", folder, trash, materialise=Materialise.DEFERRED)
    store = AuthStore(folder, session_id="s1", bridge_dir=bridge_dir, backend=backend)
    yield store
    store.close()


def test_a_snapshot_of_a_running_session_holds_every_acknowledged_write(
    legacy_root: Path, running_store: AuthStore
) -> None:
    running_store.set_keys({"session": {"491511.0": '{"gen":1}'}})
    assert not (running_store.folder / KEY).exists(), "the files lag: only the journal has the batch"
    snapshots = Snapshots(legacy_root)
    manifest = snapshots.create("s1", reason="manual")
    assert _entry_sha(snapshots, "s1", manifest.id, KEY) == hashlib.sha256(b'{"gen":1}').hexdigest()
    assert (running_store.folder / KEY).read_bytes() == b'{"gen":1}', "the snapshot checkpointed first"


def test_a_snapshot_is_refused_while_another_process_holds_the_journal(legacy_root: Path) -> None:
    bridge_dir = legacy_root / ".bridge"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bridge.store.auth_store import AuthStore\n"
        "s = AuthStore(Path(sys.argv[1]), session_id='s1', bridge_dir=Path(sys.argv[2]))\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
        "s.close()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(legacy_root / "s1"), str(bridge_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        cwd=PROJECT_ROOT,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(JournalBusyError, match="in use by another process") as err:
            Snapshots(legacy_root).create("s1")
        assert err.value.code == "journal_busy"
        assert Snapshots(legacy_root).list("s1") == [], "nothing was recorded"
    finally:
        child.communicate("", timeout=60)
    assert Snapshots(legacy_root).create("s1").files, "once the other process let go, it works"


def test_restore_replays_a_crashed_journal_before_it_counts_and_keeps_the_folder(legacy_root: Path) -> None:
    bridge_dir = legacy_root / ".bridge"
    snapshots = Snapshots(legacy_root)
    older = snapshots.create("s1", reason="manual")
    _crashed_journal(bridge_dir, "s1", legacy_root / "s1", b'{"gen":7}')
    assert not (legacy_root / "s1" / KEY).exists()

    outcome = snapshots.restore_detailed("s1", older.id)
    assert outcome.keys_before == outcome.keys_after + 1, "the journaled key was counted"
    assert outcome.pre_restore_snapshot is not None
    assert _entry_sha(snapshots, "s1", outcome.pre_restore_snapshot, KEY) == hashlib.sha256(b'{"gen":7}').hexdigest()
    assert not has_records(bridge_dir, "s1"), "the journal was checkpointed: nothing replays over the restore"
    assert not (legacy_root / "s1" / KEY).exists()


def test_adopt_sets_a_leftover_journal_aside_and_never_replays_it(legacy_root: Path) -> None:
    bridge_dir = legacy_root / ".bridge"
    folder = legacy_root / "s1"
    (folder / KEY).write_bytes(b'{"legacy":"newer"}')
    _crashed_journal(bridge_dir, "s1", folder, b'{"bridge":"stale"}')

    result = adopt(Snapshots(legacy_root), folder, "s1", now=time.time() + 120)
    assert result.journal_set_aside is not None
    parked = Path(result.journal_set_aside)
    assert parked.parent == bridge_dir / "journal-set-aside" and any(parked.glob("*.wal")), "kept, not deleted"
    assert (folder / KEY).read_bytes() == b'{"legacy":"newer"}', "the legacy folder's bytes are never written"
    store = AuthStore(folder, session_id="s1", bridge_dir=bridge_dir)
    try:
        assert store.get_keys("session", ["491511.0"]) == {"491511.0": '{"legacy":"newer"}'}
    finally:
        store.close()
    assert json.loads((folder / "creds.json").read_text())["registered"]
