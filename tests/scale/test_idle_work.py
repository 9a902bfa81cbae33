"""Periodic work stays O(changes), not O(tenants): over idle tenants, SessionWatch's tick costs a
stat per session, and it reads a session's snapshot manifest again only once a snapshot was
added or removed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.events import EventBus
from bridge.monitor.health import SessionWatch
from bridge.store.snapshots import SnapshotManifest, Snapshots
from tests.monitor.helpers import copy_folder, make_legacy_folder, monitor_settings

SESSIONS = ["idle0", "idle1", "idle2"]


@pytest.fixture
def auth_root(tmp_path: Path) -> Path:
    root = tmp_path / "auth"
    root.mkdir()
    return root


def _age_snapshot_folders(snapshots: Snapshots, seconds: float) -> None:
    """Back-date every snapshot folder's mtime, as after `seconds` of idling."""
    past = time.time() - seconds
    for sid in SESSIONS:
        os.utime(snapshots.manifests.session_dir(sid), (past, past))


def test_snapshot_age_reads_a_manifest_only_when_a_snapshot_was_added(
    auth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_legacy_folder(tmp_path / "tpl", 3)
    snapshots = Snapshots(auth_root)
    first: dict[str, SnapshotManifest] = {}
    for sid in SESSIONS:
        copy_folder(tmp_path / "tpl", auth_root / sid)
        first[sid] = snapshots.create(sid, "manual")
    _age_snapshot_folders(snapshots, 60)
    loads: list[Path] = []
    real_load: Callable[[Path], SnapshotManifest] = snapshots.manifests.load

    def counting_load(path: Path) -> SnapshotManifest:
        loads.append(path)
        return real_load(path)

    monkeypatch.setattr(snapshots.manifests, "load", counting_load)
    watch = SessionWatch(monitor_settings(auth_root), EventBus(), snapshots)

    assert watch.gather().newest_snapshot == {sid: m.created_at for sid, m in first.items()}
    assert len(loads) == len(SESSIONS)

    loads.clear()
    for _ in range(3):
        assert watch.gather().newest_snapshot == {sid: m.created_at for sid, m in first.items()}
    assert loads == []  # idle ticks: no manifest read at all

    newer = snapshots.create("idle1", "manual")
    loads.clear()
    facts = watch.gather()
    assert facts.newest_snapshot["idle1"] == newer.created_at
    assert [p.parent.name for p in loads] == ["idle1"]
