"""The watcher finds every kind of damage to a real Baileys auth folder and restores it, only adding."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.events import Event
from bridge.monitor.folder_check import CredsStatus, Damage, diagnose, inspect_folder
from bridge.monitor.incidents import IncidentLog
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import (
    copy_folder,
    damage,
    damage_going_on,
    digest,
    make_legacy_folder,
    running_watcher,
    wait_event,
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real Baileys folders made once: a registered tenant and a fresh (unregistered) one."""
    base = tmp_path_factory.mktemp("templates")
    make_legacy_folder(base / "registered", 20)
    make_legacy_folder(base / "fresh", 3, fresh=True)
    return {"registered": base / "registered", "fresh": base / "fresh"}


def is_incident(session: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == "incident" and e.session == session


def first_snapshot(session: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == "snapshot" and e.session == session


# ----- the verdict, on real folders --------------------------------------------------------------


def test_every_kind_of_damage_is_recognised(templates: dict[str, Path], auth_root: Path) -> None:
    folder = auth_root / "t1"
    copy_folder(templates["registered"], folder)
    healthy = inspect_folder(folder)
    assert healthy.healthy and healthy.registered and len(healthy.key_files) == 22

    def verdict(relinking: bool = False) -> Damage | None:
        look = inspect_folder(folder)
        found = diagnose(look, healthy, expected=healthy.identity, had_creds=True, relinking=relinking)
        return found.damage if found else None

    assert verdict() is None
    damage(f"rm {folder}/pre-key-1*.json")  # 11 of 22 key files
    assert verdict() is Damage.KEYS_MASS_DELETED
    assert verdict(relinking=True) is None  # a relink may send the old keys to the trash
    damage(f"cp {templates['registered']}/pre-key-1*.json {folder}/")
    assert verdict() is None
    damage(f"head -c 100 {templates['registered']}/creds.json > {folder}/creds.json")
    assert verdict() is Damage.CREDS_TRUNCATED
    damage(f": > {folder}/creds.json")
    assert inspect_folder(folder).creds is CredsStatus.EMPTY and verdict() is Damage.CREDS_TRUNCATED
    damage(f"printf '%s' '{{\"hello\": 1, \"padding\": \"{'x' * 3000}\"}}' > {folder}/creds.json")
    assert verdict() is Damage.CREDS_INVALID
    damage(f"cp {templates['fresh']}/creds.json {folder}/creds.json")
    assert verdict() is Damage.CREDS_UNREGISTERED
    assert verdict(relinking=True) is None  # the bridge itself is linking a new device here
    damage(f"rm {folder}/creds.json")
    assert verdict() is Damage.CREDS_DELETED
    damage(f"rm -rf {folder}")
    assert verdict() is Damage.FOLDER_REMOVED


def test_a_new_folder_without_creds_or_snapshots_is_not_damage(auth_root: Path) -> None:
    (auth_root / "new").mkdir()
    look = inspect_folder(auth_root / "new")
    assert diagnose(look, None, expected=None, had_creds=False) is None
    assert diagnose(inspect_folder(auth_root / "never"), None, expected=None, had_creds=False) is None


# ----- the running watcher -----------------------------------------------------------------------


async def test_rm_rf_of_an_auth_folder_is_restored_byte_for_byte(templates: dict[str, Path], auth_root: Path) -> None:
    folder = auth_root / "acme"
    copy_folder(templates["registered"], folder)
    before = digest(folder)
    restores = REGISTRY.get_sample_value("bridge_monitor_restores_total", {"reason": "folder_removed"}) or 0.0
    async with running_watcher(auth_root) as env:
        await wait_event(env.bus, first_snapshot("acme"))
        damage(f"rm -rf {folder}")
        event = await wait_event(env.bus, is_incident("acme"))
        alert = await wait_event(env.bus, lambda e: e.kind == "alert" and e.session == "acme")
    assert event.data["kind"] == "folder_removed" and event.data["restored"] is True
    assert digest(folder) == before
    assert alert.data["severity"] == "critical" and alert.data["alert"] == "folder_removed"
    print(f"\nrm -rf -> restored: {event.data['seconds_to_restore']} s after detection")
    [journal] = IncidentLog(auth_root / ".bridge").latest()
    assert journal.id == event.data["id"] and journal.restored
    assert REGISTRY.get_sample_value("bridge_monitor_restores_total", {"reason": "folder_removed"}) == restores + 1


def text_of(path: Path) -> str:
    return path.read_text()


def inodes(folder: Path) -> dict[str, int]:
    """Inode of every key file: a repair that moved a key file away (and back) changes it."""
    return {p.name: p.stat().st_ino for p in folder.iterdir() if p.name != "creds.json"}


async def test_truncated_creds_are_put_back_and_no_key_file_is_touched(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t2"
    copy_folder(templates["registered"], folder)
    before, keys = digest(folder), inodes(folder)
    async with running_watcher(auth_root) as env:
        await wait_event(env.bus, first_snapshot("t2"))
        damage(f": > {folder}/creds.json")
        event = await wait_event(env.bus, is_incident("t2"))
    assert event.data["kind"] == "creds_truncated" and event.data["restored"]
    assert event.data["action"] == "put_back_creds" and event.data["creds_source"].startswith("snapshot ")
    assert digest(folder) == before
    assert inodes(folder) == keys  # creds only: every key file stayed where it was
    assert event.data["keys_before"] == event.data["keys_after"] == len(keys)
    assert Snapshots(auth_root).list("t2")[0].reason != "pre-restore"  # no whole-folder restore


async def test_invalid_creds_are_kept_as_evidence_before_good_ones_are_put_back(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t2b"
    copy_folder(templates["registered"], folder)
    before = digest(folder)
    async with running_watcher(auth_root) as env:
        await wait_event(env.bus, first_snapshot("t2b"))
        damage(f"printf '{{\"not\": \"creds\"}}' > {folder}/creds.json")
        event = await wait_event(env.bus, is_incident("t2b"))
    assert event.data["kind"] == "creds_truncated" and event.data["restored"]  # shorter and unusable
    assert digest(folder) == before
    kept = Path(event.data["replaced_path"])
    assert kept.parent == auth_root / ".bridge" / "creds-backups" / "t2b" and text_of(kept) == '{"not": "creds"}'


async def test_fresh_creds_written_over_registered_ones_are_rolled_back(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t3"
    copy_folder(templates["registered"], folder)
    before, keys = digest(folder), inodes(folder)
    async with running_watcher(auth_root) as env:
        await wait_event(env.bus, first_snapshot("t3"))
        # What legacy Baileys does after failing to read creds: initAuthCreds() and saveCreds().
        damage(f"cp {templates['fresh']}/creds.json {folder}/new.tmp && mv {folder}/new.tmp {folder}/creds.json")
        event = await wait_event(env.bus, is_incident("t3"))
    assert event.data["kind"] == "creds_unregistered" and event.data["restored"]
    assert event.data["action"] == "put_back_creds"
    assert digest(folder) == before and inspect_folder(folder).registered and inodes(folder) == keys


async def test_mass_deleted_keys_are_restored_but_one_consumed_pre_key_is_normal(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t4"
    copy_folder(templates["registered"], folder)
    original = digest(folder)
    async with running_watcher(auth_root) as env:
        first = await wait_event(env.bus, first_snapshot("t4"))
        damage(f"rm {folder}/pre-key-20.json")  # Baileys consumed one pre-key: not an incident
        await asyncio.sleep(2.5)  # events handled and one full scan done
        assert [e for e in env.bus.since(first.seq) if e.kind in ("incident", "snapshot")] == []
        survivors = inodes(folder)
        damage(f"rm {folder}/pre-key-*.json")
        event = await wait_event(env.bus, is_incident("t4"), after=first.seq)
    assert event.data["kind"] == "keys_mass_deleted" and event.data["restored"]
    # Losses within BRIDGE_MONITOR_MASS_DELETE_WINDOW add up, so the consumed pre-key comes back too (harmless).
    assert event.data["action"] == "put_back_keys" and event.data["keys_put_back"] == 20
    assert digest(folder) == original
    survivors = {k: v for k, v in survivors.items() if not k.startswith("pre-key-")}
    assert {k: v for k, v in inodes(folder).items() if k in survivors} == survivors  # never moved
    assert [e for e in env.bus.since(0) if e.kind == "incident"] == [event]


async def test_damage_done_while_the_monitor_was_down_is_found_by_the_first_scan(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t5"
    copy_folder(templates["registered"], folder)
    before = digest(folder)
    Snapshots(auth_root).create("t5", "manual")
    damage(f"rm {folder}/creds.json")
    async with running_watcher(auth_root) as env:
        event = await wait_event(env.bus, is_incident("t5"))
    assert event.data["kind"] == "creds_deleted" and event.data["restored"]
    assert digest(folder) == before


async def test_without_a_snapshot_nothing_is_touched_and_the_operator_is_told(
    templates: dict[str, Path], auth_root: Path
) -> None:
    folder = auth_root / "t6"
    copy_folder(templates["registered"], folder)
    damage(f"head -c 50 {templates['registered']}/creds.json > {folder}/creds.json")
    before = digest(folder)
    async with running_watcher(auth_root) as env:
        event = await wait_event(env.bus, is_incident("t6"))
        alert = await wait_event(env.bus, lambda e: e.kind == "alert" and e.session == "t6")
    assert event.data["restored"] is False and "no intact creds" in event.data["error"]
    assert alert.data["severity"] == "critical" and "NOT repaired" in alert.data["message"]
    assert digest(folder) == before
    assert Snapshots(auth_root).list("t6") == []  # a damaged folder is never snapshotted as good


async def test_scheduled_snapshots_cover_every_healthy_folder(templates: dict[str, Path], auth_root: Path) -> None:
    copy_folder(templates["registered"], auth_root / "a")
    copy_folder(templates["fresh"], auth_root / "b")
    (auth_root / "c").mkdir()  # not set up yet: nothing to snapshot
    async with running_watcher(auth_root) as env:
        taken = await env.watcher.snapshot_all()
    assert sorted(m.session for m in taken) == ["a", "b"]
    assert {m.registered for m in taken if m.session == "a"} == {True}


@pytest.mark.slow
async def test_benchmark_rm_rf_to_restored_over_repeated_deletions(tmp_path: Path, auth_root: Path) -> None:
    """Measured, printed, never asserted as a duration: deletion -> restored for a folder of 500 keys."""
    make_legacy_folder(tmp_path / "big", 500)
    folder = auth_root / "big"
    copy_folder(tmp_path / "big", folder)
    expected = digest(folder)
    wall: list[float] = []
    # Ten separate accidents: with the default window, damage back within a minute of its repair
    # would be the same incident (repaired quietly), and there would be one incident event only.
    async with running_watcher(auth_root, monitor_mass_delete_window=0.1) as env:
        await wait_event(env.bus, first_snapshot("big"))
        mark = env.bus.last_seq
        for _ in range(10):
            started = time.monotonic()
            damage(f"rm -rf {folder}")
            event = await wait_event(env.bus, is_incident("big"), after=mark)
            wall.append(time.monotonic() - started)
            mark = env.bus.last_seq
            assert event.data["restored"] and digest(folder) == expected
    print(f"\nrm -rf -> restored, {len(expected)} files, 10 runs: median {statistics.median(wall):.2f} s, "
          f"max {max(wall):.2f} s (includes {env.settings.monitor_confirm_delay} s confirm delay)")


async def test_filesystem_events_alone_catch_a_deletion_under_a_relative_auth_root(
    templates: dict[str, Path], auth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default BRIDGE_AUTH_ROOT is relative (./data/auth); events must still map to sessions.
    The periodic scan is set far away so only watchfiles can have noticed."""
    copy_folder(templates["registered"], auth_root / "rel")
    expected = digest(auth_root / "rel")
    monkeypatch.chdir(auth_root.parent)
    async with running_watcher(Path(auth_root.name), monitor_scan_interval=3600) as env:
        await wait_event(env.bus, first_snapshot("rel"))
        damage(f"rm -rf {auth_root}/rel")
        event = await wait_event(env.bus, is_incident("rel"), within=60)
    assert event.data["restored"] and digest(auth_root / "rel") == expected


async def test_a_replaced_auth_root_is_reported_and_watched_again(
    templates: dict[str, Path], auth_root: Path, tmp_path: Path
) -> None:
    """rm -rf of the whole root (snapshots included) cannot be undone: say so loudly. When the
    root comes back (from a backup), its folders are watched again by events, not only scans."""
    copy_folder(templates["registered"], auth_root / "a")
    async with running_watcher(auth_root, monitor_scan_interval=0.5) as env:
        await wait_event(env.bus, first_snapshot("a"))
        damage(f"cp -a {auth_root} {tmp_path}/backup && rm -rf {auth_root}")
        alert = await wait_event(env.bus, lambda e: e.kind == "alert" and e.data["alert"] == "auth_root_missing")
        assert alert.data["severity"] == "critical"
        damage(f"mv {tmp_path}/backup {auth_root}")
        env.settings.monitor_scan_interval = 3600  # from now on only events can notice
        await asyncio.sleep(2.0)  # the scan loop is in its long sleep; the watch was re-armed
        mark = env.bus.last_seq
        damage(f"rm {auth_root}/a/creds.json")
        event = await wait_event(env.bus, is_incident("a"), after=mark, within=60)
    assert event.data["kind"] == "creds_deleted" and event.data["restored"]


async def test_key_files_removed_one_by_one_are_one_incident_however_long_the_script_runs(
    templates: dict[str, Path], auth_root: Path
) -> None:
    """Each removal alone is what Baileys does when it consumes a pre-key; together they are a mass
    deletion, and a script that keeps deleting after the first repair is still that one incident."""
    folder = auth_root / "t4slow"
    copy_folder(templates["registered"], folder)
    original = digest(folder)
    async with running_watcher(auth_root, monitor_mass_delete_min=4, monitor_scan_interval=0.5) as env:
        first = await wait_event(env.bus, first_snapshot("t4slow"))
        async with damage_going_on(f"cd {folder} && for f in $(ls pre-key-*.json); do rm $f; sleep 0.15; done") as rm:
            event = await wait_event(env.bus, is_incident("t4slow"), after=first.seq)
            assert rm.returncode is None, "detected only after the script was done"
        deadline = asyncio.get_running_loop().time() + 30
        while digest(folder) != original:
            assert asyncio.get_running_loop().time() < deadline, sorted(set(original) - set(digest(folder)))
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        after = env.bus.since(first.seq)
    assert event.data["kind"] == "keys_mass_deleted" and event.data["restored"]
    assert event.data["action"] == "put_back_keys"
    assert [e for e in after if e.kind == "incident"] == [event]
    assert [e.data["alert"] for e in after if e.kind == "alert"] == ["keys_mass_deleted"]
