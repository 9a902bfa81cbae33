"""The periodic scan's cost follows the changes, not the tenants: it fully looks only at folders
whose signature (os.stat of the folder, creds.json, identity record, snapshot folder) moved, plus a
sweep slice; and every kind of damage still changes the signature, so the next scan catches it."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bridge.events import EventBus
from bridge.monitor import watcher as watcher_module
from bridge.monitor.folder_check import Damage, FolderLook
from bridge.monitor.scan_plan import RACY_SECONDS, ScanPlan, signature
from bridge.monitor.watcher import AuthWatcher
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import copy_folder, damage, make_legacy_folder, monitor_settings

TENANTS = [f"t{i:02d}" for i in range(12)]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One linked legacy folder per tenant, each its own account (its own `initAuthCreds()`)."""
    base = tmp_path_factory.mktemp("tenants")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: make_legacy_folder(base / sid, 12), TENANTS))
    return base


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times the watcher fully looked at each folder (inspect_folder, by folder name)."""
    counted: Counter[str] = Counter()
    real: Callable[[Path], FolderLook] = watcher_module.inspect_folder

    def counting(folder: Path) -> FolderLook:
        counted[folder.name] += 1
        return real(folder)

    monkeypatch.setattr(watcher_module, "inspect_folder", counting)
    return counted


@pytest.fixture
async def quiet(templates: Path, auth_root: Path, looks: Counter[str]) -> AsyncIterator[AuthWatcher]:
    """A watcher (scans called by the test, no watchfiles) over idle tenants it has seen settle:
    first sight (a look and a first snapshot each), then one more look once the snapshots are
    older than `RACY_SECONDS`, after which nothing has changed."""
    for sid in TENANTS:
        copy_folder(templates / sid, auth_root / sid)
    settings = monitor_settings(auth_root, monitor_settle_seconds=3600.0, monitor_scan_interval=2.0)
    watcher = AuthWatcher(settings, EventBus(), Snapshots(auth_root))
    assert await watcher.scan() == []
    await asyncio.sleep(RACY_SECONDS + 0.2)
    assert await watcher.scan() == []
    assert watcher.plan.quiet() == set(TENANTS)
    looks.clear()
    yield watcher
    for timer in watcher._timers.values():
        timer.cancel()


async def test_a_scan_over_unchanged_folders_looks_only_at_its_sweep_slice(
    quiet: AuthWatcher, looks: Counter[str]
) -> None:
    # 12 tenants, one scan per 2 s, every folder fully looked at within 300 s: 1 per scan.
    swept: list[str] = []
    for _ in range(6):
        assert await quiet.scan() == []
        assert sum(looks.values()) == 1
        swept.extend(looks)
        looks.clear()
    assert len(set(swept)) == 6  # the sweep moves on: the longest unlooked first
    assert await quiet.scan(full=True) == []
    assert looks == Counter({sid: 1 for sid in TENANTS})


async def test_damage_is_caught_by_the_next_scan_even_when_it_hides_from_mtime(
    quiet: AuthWatcher, looks: Counter[str], auth_root: Path
) -> None:
    creds = auth_root / "t03" / "creds.json"
    mtime = creds.stat().st_mtime
    size = creds.stat().st_size
    # Garbage over the first 64 bytes in place, then the old mtime put back: size and mtime as before.
    damage(f"head -c 64 /dev/urandom | dd of={creds} conv=notrunc status=none && touch -d @{mtime} {creds}")
    damage(f": > {auth_root}/t07/creds.json")
    damage(f"rm -rf {auth_root}/t08")
    damage(f"rm {auth_root}/t05/pre-key-*.json")
    damage(f"chmod 000 {auth_root}/t10/creds.json")
    assert creds.stat().st_size == size and creds.stat().st_mtime == mtime
    found = {i.session: i.kind for i in await quiet.scan()}
    assert found == {"t03": Damage.CREDS_INVALID.value, "t07": Damage.CREDS_TRUNCATED.value,
                     "t08": Damage.FOLDER_REMOVED.value, "t05": Damage.KEYS_MASS_DELETED.value}
    assert {"t03", "t07", "t08", "t05", "t10"} <= set(looks)  # t10: readable to root, but looked at
    assert len(looks) <= 6  # the five, and at most one of the sweep
    damage(f"chmod 600 {auth_root}/t10/creds.json")


async def test_a_folder_with_something_to_follow_up_is_looked_at_on_every_scan(
    quiet: AuthWatcher, looks: Counter[str], auth_root: Path
) -> None:
    damage(f"cp {auth_root}/t01/creds.json {auth_root}/t02/creds.json")  # another session's account
    found = await quiet.scan()
    assert [(i.session, i.kind) for i in found] == [("t02", Damage.CREDS_FOREIGN.value)]
    for _ in range(3):
        looks.clear()
        await asyncio.sleep(RACY_SECONDS / 4)
        assert await quiet.scan() == []  # the same open incident, not a new one
        assert looks["t02"] >= 1


def test_the_sweep_looks_at_every_folder_within_its_period() -> None:
    plan = ScanPlan(full_sweep=10.0)
    sigs = {f"s{i}": signature(()) for i in range(30)}
    for sid in sigs:
        plan.looked(sid, sigs[sid], now=0.0)
    assert plan.quiet() == set(sigs)
    seen: set[str] = set()
    for tick in range(1, 11):  # one scan a second: 3 of the 30 each time
        due = plan.due(sigs, interval=1.0, now=float(tick))
        assert len(due) == 3
        seen.update(due)
        for sid in due:
            plan.looked(sid, sigs[sid], now=float(tick))
    assert seen == set(sigs)


def test_a_signature_with_a_fresh_timestamp_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    now = time.time_ns()
    assert not signature([path]).trusted(now)
    past = time.time() - 2 * RACY_SECONDS
    os.utime(path, (past, past))  # ctime stays new: a write with its mtime set back is still seen
    assert not signature([path]).trusted(now)
    assert signature([path]).trusted(now + int(2 * RACY_SECONDS * 1e9))
    assert signature([tmp_path / "missing"]) != signature([path])
