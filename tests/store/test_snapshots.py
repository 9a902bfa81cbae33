"""Snapshots: content-addressed, immutable, verifiable, restorable, prunable only on purpose.

Folders are written by real Baileys (`useMultiFileAuthState` in Node, tests/store/node/
legacy_auth.mjs) and read back by it after a restore: the proof that a snapshot brings a tenant
back is that real Baileys loads identical values.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bridge.config import PROJECT_ROOT
from bridge.errors import SnapshotError
from bridge.store.auth_store import DOWNGRADE_REASON, AuthStore
from bridge.store.snapshots import KeepPolicy, Snapshots, prune_trash, sha256_hex

LEGACY_AUTH = PROJECT_ROOT / "tests" / "store" / "node" / "legacy_auth.mjs"
NODE_TIMEOUT = 120.0


def _node(*args: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; snapshot tests need real Node and Baileys")
    proc = subprocess.run(
        [node, str(LEGACY_AUTH), *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=NODE_TIMEOUT
    )
    assert proc.returncode == 0, f"legacy_auth.mjs {args[0]} failed: {proc.stderr}"
    return proc.stdout


def make_legacy(folder: Path, pre_keys: int = 5, *, registered: bool = True) -> None:
    """Write `folder` with real legacy useMultiFileAuthState (creds + keys of several types)."""
    _node("make", str(folder), str(pre_keys), "registered" if registered else "fresh")


def dump_legacy(folder: Path) -> dict[str, Any]:
    """What real useMultiFileAuthState loads from `folder`: creds and every key, as BufferJSON."""
    result: dict[str, Any] = json.loads(_node("dump", str(folder)))
    return result


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by name (what a byte-exact restore must reproduce)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


class Clock:
    """A settable clock for Snapshots, to build a history spanning days in one test."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


@pytest.fixture
def acme(root: Path) -> Iterator[Path]:
    folder = root / "acme"
    make_legacy(folder)
    yield folder


def _flip_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_restore_after_rm_rf_gives_real_baileys_identical_values(root: Path, acme: Path) -> None:
    before = dump_legacy(acme)
    original = folder_bytes(acme)
    snaps = Snapshots(root)
    manifest = snaps.create("acme", reason="manual")
    assert manifest.registered
    assert {f.name for f in manifest.files} == set(original)

    shutil.rmtree(acme)
    outcome = snaps.restore_detailed("acme", manifest.id)

    assert outcome.pre_restore_snapshot is None and outcome.replaced_path is None
    assert folder_bytes(acme) == original
    assert dump_legacy(acme) == before
    assert before["creds"]["me"]["id"] == "15550001111:7@s.whatsapp.net"


def test_objects_and_manifests_are_read_only_and_named_by_sha256(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    manifest = snaps.create("acme")
    for entry in manifest.files:
        obj = snaps.object_path(entry.sha256)
        assert obj == root / ".bridge" / "objects" / entry.sha256[:2] / entry.sha256
        assert stat.S_IMODE(obj.stat().st_mode) == 0o444
        assert sha256_hex(obj.read_bytes()) == entry.sha256 == sha256_hex((acme / entry.name).read_bytes())
        assert entry.size == (acme / entry.name).stat().st_size
    path = root / ".bridge" / "snapshots" / "acme" / f"{manifest.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert snaps.load_manifest(path) == manifest


def test_ids_sort_by_time_and_list_is_newest_first(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    made = [snaps.create("acme", reason=f"r{i}").id for i in range(5)]
    assert made == sorted(made)
    assert [m.id for m in snaps.list("acme")] == list(reversed(made))
    assert snaps.latest("acme") is not None and snaps.latest("acme").id == made[-1]  # type: ignore[union-attr]


def test_ten_snapshots_of_an_unchanged_session_cost_one_copy(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    for _ in range(10):
        snaps.create("acme", reason="schedule")
    stats = snaps.dedup_stats()
    folder_size = sum(len(b) for b in folder_bytes(acme).values())
    assert stats.snapshots == 10
    assert stats.objects == len(folder_bytes(acme))
    assert stats.stored_bytes == folder_size
    assert stats.logical_bytes == 10 * folder_size
    assert stats.ratio == pytest.approx(10.0)


def test_identical_files_are_shared_across_sessions(root: Path, acme: Path) -> None:
    shutil.copytree(acme, root / "globex")
    snaps = Snapshots(root)
    snaps.create("acme")
    objects_after_first = snaps.dedup_stats().objects
    snaps.create("globex")
    stats = snaps.dedup_stats()
    assert stats.objects == objects_after_first
    assert stats.ratio == pytest.approx(2.0)


def test_corrupt_object_is_named_by_verify_and_restore_refuses(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    manifest = snaps.create("acme")
    target = next(f for f in manifest.files if f.name.startswith("pre-key-"))
    obj = snaps.object_path(target.sha256)
    _flip_byte(obj)
    current = folder_bytes(acme)

    report = snaps.verify()
    assert not report.ok
    assert [(p.kind, p.path) for p in report.problems] == [("corrupt", str(obj))]
    assert report.problems[0].snapshots == [f"acme/{manifest.id}:{target.name}"]

    with pytest.raises(SnapshotError, match=str(obj)):
        snaps.restore("acme", manifest.id)
    assert folder_bytes(acme) == current
    assert not list((root / ".bridge" / "staging").iterdir())
    assert snaps.latest_good("acme") is None


def test_missing_object_is_reported_as_missing(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    manifest = snaps.create("acme")
    obj = snaps.object_path(manifest.files[0].sha256)
    obj.unlink()
    report = snaps.verify(manifest)
    assert [(p.kind, p.path) for p in report.problems] == [("missing", str(obj))]


def test_restore_keeps_only_snapshot_files_and_keeps_the_replaced_folder(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    good = snaps.create("acme")
    original = folder_bytes(acme)
    (acme / "pre-key-99.json").write_text('{"stray": true}')
    (acme / "creds.json").write_text(json.dumps({**json.loads(original["creds.json"]), "me": None}))
    changed = folder_bytes(acme)
    objects_before = snaps.dedup_stats().objects

    outcome = snaps.restore_detailed("acme", good.id)

    assert folder_bytes(acme) == original
    assert outcome.pre_restore_snapshot is not None
    pre = snaps.get("acme", outcome.pre_restore_snapshot)
    assert pre.reason == "pre-restore" and not pre.registered
    assert {f.name for f in pre.files} == set(changed)
    assert outcome.replaced_path is not None
    replaced = Path(outcome.replaced_path)
    assert replaced.parent == root / ".bridge" / "replaced"
    assert folder_bytes(replaced) == changed
    assert {m.id for m in snaps.list("acme")} == {good.id, pre.id}
    assert snaps.dedup_stats().objects >= objects_before
    assert snaps.verify().ok


def test_latest_good_skips_snapshots_with_invalid_creds(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    good = snaps.create("acme")
    (acme / "creds.json").write_text("{truncated")
    bad = snaps.create("acme")
    assert not bad.registered
    assert snaps.latest("acme") == bad
    assert snaps.latest("acme", registered=True) == good
    assert snaps.latest_good("acme") == good


def test_creds_of_a_pairing_code_request_are_not_a_registered_snapshot(root: Path, acme: Path) -> None:
    """`me` named `~` with a pairing code, no account: what requestPairingCode saves before linking."""
    snaps = Snapshots(root)
    linked = snaps.create("acme")
    creds = json.loads((acme / "creds.json").read_text())
    creds.update(me={"id": "15550001111@s.whatsapp.net", "name": "~"}, pairingCode="ABCD1234", registered=False)
    (acme / "creds.json").write_text(json.dumps(creds))
    requested = snaps.create("acme")
    assert not requested.registered
    assert snaps.latest_good("acme") == requested
    assert snaps.latest_good("acme", registered=True) == linked


def test_snapshot_of_a_missing_folder_is_refused(root: Path) -> None:
    with pytest.raises(SnapshotError, match="not a folder"):
        Snapshots(root).create("ghost")


def test_creds_downgrade_hook_snapshots_registered_creds_first(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    registered_text = (acme / "creds.json").read_text()
    before = REGISTRY.get_sample_value("bridge_snapshots_total", {"reason": DOWNGRADE_REASON}) or 0.0
    store = AuthStore(
        acme, session_id="acme", bridge_dir=root / ".bridge", before_creds_downgrade=snaps.hook_for("acme")
    )
    unregistered = json.loads(registered_text)
    del unregistered["me"]
    store.save_creds(json.dumps(unregistered))

    taken = snaps.list("acme")
    assert len(taken) == 1 and taken[0].registered
    creds_entry = next(f for f in taken[0].files if f.name == "creds.json")
    assert snaps.read_object(creds_entry.sha256).decode() == registered_text
    assert taken[0].reason == DOWNGRADE_REASON
    assert REGISTRY.get_sample_value("bridge_snapshots_total", {"reason": DOWNGRADE_REASON}) == before + 1
    assert REGISTRY.get_sample_value("bridge_snapshot_last_timestamp", {"session": "acme"}) == taken[0].created_at


# ----- prune ------------------------------------------------------------------------------------
def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def test_prune_applies_last_daily_and_weekly(root: Path) -> None:
    make_legacy(root / "fresh", registered=False)
    clock = Clock(_at(5, 9))
    snaps = Snapshots(root, clock=clock)
    ids = {}
    # Mon/Tue of ISO week 2, then Mon/Tue of week 3.
    for label, when in {
        "A": _at(5, 9),
        "B": _at(5, 18),
        "C": _at(6, 9),
        "D": _at(12, 9),
        "E": _at(12, 18),
        "F": _at(13, 9),
    }.items():
        clock.set(when)
        ids[label] = snaps.create("fresh").id

    report = snaps.prune("fresh", KeepPolicy(last=1, daily=2, weekly=2))

    # last 1: F; newest of the 2 newest days: F (13th), E (12th); newest of 2 newest weeks: F, C.
    assert set(report.kept) == {ids["F"], ids["E"], ids["C"]}
    assert set(report.removed) == {ids["A"], ids["B"], ids["D"]}
    assert {m.id for m in snaps.list("fresh")} == set(report.kept)
    assert snaps.verify().ok


def test_prune_never_deletes_newest_or_registered_unless_forced(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    made = [snaps.create("acme").id for _ in range(5)]
    policy = KeepPolicy(last=1, daily=0, weekly=0)

    planned = snaps.prune("acme", policy, dry_run=True)
    assert planned.removed == [] and set(planned.protected) == set(made[:-1])
    kept = snaps.prune("acme", policy)
    assert kept.removed == [] and len(snaps.list("acme")) == 5

    forced = snaps.prune("acme", policy, force=True)
    assert set(forced.removed) == set(made[:-1])
    assert [m.id for m in snaps.list("acme")] == [made[-1]]


def test_prune_removes_only_objects_no_snapshot_references(root: Path) -> None:
    folder = root / "fresh"
    make_legacy(folder, registered=False)
    snaps = Snapshots(root)
    old = snaps.create("fresh")
    (folder / "pre-key-1.json").rename(root / "moved-away.json")
    (folder / "pre-key-77.json").write_text('{"new": 1}')
    snaps.create("fresh")
    gone_sha = next(f.sha256 for f in old.files if f.name == "pre-key-1.json")

    report = snaps.prune("fresh", KeepPolicy(last=1, daily=0, weekly=0))

    assert report.removed == [old.id]
    assert report.objects_removed == 1
    assert not snaps.object_path(gone_sha).exists()
    assert snaps.verify().ok


def test_prune_refuses_a_policy_that_keeps_nothing(root: Path, acme: Path) -> None:
    snaps = Snapshots(root)
    snaps.create("acme")
    with pytest.raises(SnapshotError, match="keeps nothing"):
        snaps.prune("acme", KeepPolicy(last=0, daily=0, weekly=0), force=True)
    assert len(snaps.list("acme")) == 1


def test_prune_trash_drops_only_old_trashed_keys(root: Path) -> None:
    trash = root / ".bridge" / "trash" / "acme"
    trash.mkdir(parents=True)
    old_ns = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1e9)
    new_ns = int(datetime.now(UTC).timestamp() * 1e9)
    (trash / f"{old_ns}-pre-key-1.json").write_text("{}")
    (trash / f"{new_ns}-pre-key-2.json").write_text("{}")
    (trash / f"{old_ns}-creds.json").write_text("{}")

    dry = prune_trash(root / ".bridge", 30, dry_run=True)
    assert dry.removed == [str(trash / f"{old_ns}-pre-key-1.json")]
    assert (trash / f"{old_ns}-pre-key-1.json").exists()
    report = prune_trash(root / ".bridge", 30)
    assert report.removed == dry.removed
    assert sorted(p.name for p in trash.iterdir()) == sorted([f"{new_ns}-pre-key-2.json", f"{old_ns}-creds.json"])


def test_create_if_due_snapshots_only_when_the_newest_is_older_than_max_age(root: Path, acme: Path) -> None:
    clock = Clock(_at(5, 9))
    snaps = Snapshots(root, clock=clock)
    first = snaps.create_if_due("acme", 3600, reason="schedule")
    assert first is not None and first.reason == "schedule"
    clock.set(_at(5, 9).replace(minute=59))
    assert snaps.create_if_due("acme", 3600, reason="creds-change") is None
    clock.set(_at(5, 10).replace(minute=1))
    second = snaps.create_if_due("acme", 3600, reason="schedule")
    assert second is not None and [m.id for m in snaps.list("acme")] == [second.id, first.id]


@pytest.mark.slow
def test_a_large_session_round_trips_through_rm_rf_and_restore(root: Path) -> None:
    folder = root / "large"
    make_legacy(folder, pre_keys=2000)
    before = dump_legacy(folder)
    snaps = Snapshots(root)
    manifests = [snaps.create("large") for _ in range(3)]
    assert snaps.dedup_stats().objects == len(manifests[0].files) == 2005
    shutil.rmtree(folder)
    snaps.restore("large", manifests[0].id)
    assert dump_legacy(folder) == before
    assert snaps.verify().ok
