"""Storage that fails under the monitor: a folder it may not read, a disk that fills up.

Both are real: `chmod 000` bites a monitor running without CAP_DAC_OVERRIDE (the tests run as
root, so the monitor runs in a child whose bounding set drops DAC_OVERRIDE and DAC_READ_SEARCH:
same uid, no way around file permissions), and "full" is a small tmpfs mounted by the test.
Each fault must be one alert with the next step, no traceback per scan, and one message when it
is over; nothing may be eaten or repaired because of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridge.config import PROJECT_ROOT
from bridge.events import Event, EventBus
from bridge.monitor.alerts import AlertSink, LogSink
from bridge.monitor.runner import run_monitor
from bridge.monitor.watcher import AuthWatcher
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import copy_folder, damage, digest, make_legacy_folder, monitor_settings, wait_event
from tests.monitor.telegram_receiver import TelegramReceiver

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def without_dac_override() -> list[str]:
    """The command prefix that runs a child which file permissions bind, even as root."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE for the child")
    if os.geteuid() != 0:
        return []  # an ordinary user is bound by permissions anyway
    probe = subprocess.run([*NO_DAC, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return NO_DAC


async def test_an_unreadable_folder_is_one_alert_with_the_fix_no_traceback_and_one_message_when_readable(
    auth_root: Path, telegram: TelegramReceiver
) -> None:
    folder = auth_root / "locked"
    make_legacy_folder(folder, 8)
    before = digest(folder)
    env = {
        **os.environ,
        "BRIDGE_MONITOR_SCAN_INTERVAL": "0.3",
        "BRIDGE_MONITOR_CONFIRM_DELAY": "0.1",
        "BRIDGE_TELEGRAM_TOKEN": "5:perm",
        "BRIDGE_TELEGRAM_CHAT_ID": "9",
        "BRIDGE_TELEGRAM_API": telegram.base_url,
    }
    proc = await asyncio.create_subprocess_exec(
        *without_dac_override(), sys.executable, "-m", "tests.monitor.audited_cli", str(auth_root),
        "monitor", "--root", str(auth_root),
        cwd=PROJECT_ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while Snapshots(auth_root).latest("locked") is None:
            assert time.monotonic() < deadline and proc.returncode is None, "the monitor took no snapshot"
            await asyncio.sleep(0.1)
        damage(f"chmod 000 {folder}")
        locked_at = time.monotonic()
        [alert] = await telegram.wait_for(1)
        print(f"\nchmod 000 -> alert after {time.monotonic() - locked_at:.2f} s")
        await asyncio.sleep(3.0)  # ten scans of an unreadable folder
        assert len(telegram.messages) == 1
        damage(f"chmod 700 {folder}")
        messages = await telegram.wait_for(2)
        await asyncio.sleep(1.0)
    finally:
        damage(f"chmod 700 {folder}")
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "AUDIT-VIOLATION" not in log
    assert "CRITICAL folder_unreadable" in alert.text and "Permission denied" in alert.text
    assert "chown/chmod" in alert.text  # the next step
    assert len(messages) == 2 and "folder_unreadable" in messages[1].text and "is over" in messages[1].text
    assert digest(folder) == before  # nothing was "repaired" because it could not be read


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 3 MiB tmpfs holding an auth root, unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="monitor-tmpfs-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


@asynccontextmanager
async def monitor_on(auth_root: Path) -> AsyncIterator[tuple[EventBus, AuthWatcher]]:
    """The whole standalone monitor (watcher, session watch, alerts) as `python -m bridge monitor`."""
    settings = monitor_settings(auth_root, monitor_scan_interval=0.2, monitor_min_free_mb=2)
    bus = EventBus()
    snapshots = Snapshots(auth_root)
    watcher = AuthWatcher(settings, bus, snapshots)
    sinks: list[AlertSink] = [LogSink()]
    task = asyncio.create_task(run_monitor(settings, bus, snapshots, sinks=sinks, watcher=watcher))
    try:
        yield bus, watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def alert_kinds(events: list[Event], kind: str) -> list[str]:
    return [e.data["severity"] for e in events if e.kind == "alert" and e.data["alert"] == kind]


async def test_a_full_disk_is_one_storage_incident_snapshots_back_off_and_disk_low_is_said_once_each_way(
    small_disk: Path, tmp_path: Path
) -> None:
    make_legacy_folder(tmp_path / "tpl", 30)
    auth_root = small_disk / "auth"
    auth_root.mkdir()
    copy_folder(tmp_path / "tpl", auth_root / "t")
    before = digest(auth_root / "t")
    damage(f"head -c 8M /dev/zero > {small_disk}/filler || true")  # the disk is full before any snapshot
    assert free_bytes(small_disk) < 64 * 1024
    async with monitor_on(auth_root) as (bus, watcher):
        opened = await wait_event(bus, lambda e: e.kind == "alert" and e.data["alert"] == "storage_fault")
        await asyncio.sleep(3.0)  # fifteen scans
        attempts = watcher.snapshot_failures("t")
        held = free_bytes(small_disk)
        damage(f"rm {small_disk}/filler")
        freed_at = time.monotonic()
        await wait_event(bus, lambda e: e.kind == "snapshot" and e.session == "t", within=120)
        print(f"\nfull disk: {attempts} snapshot attempts in ~3 s of scans every 0.2 s; "
              f"snapshot taken {time.monotonic() - freed_at:.1f} s after space was freed")
        await wait_event(bus, lambda e: e.kind == "alert" and e.data["alert"] == "disk_low"
                         and e.data["severity"] == "info", within=30)
        await wait_event(bus, lambda e: e.kind == "alert" and e.data.get("resolved")
                         and e.data.get("incident") == opened.data["incident"], within=30)
        await asyncio.sleep(1.0)
        events = bus.since(0)
    assert opened.data["severity"] == "critical" and "storage_full" in opened.data["message"]
    assert 1 <= attempts <= 5, attempts  # backing off, not once per scan
    assert held < 64 * 1024
    assert alert_kinds(events, "storage_fault") == ["critical", "info"]  # one incident, over when space is back
    assert alert_kinds(events, "snapshot_failed") == []
    # disk_low is the session watch's own forecast (bridge/monitor/health.py), said once each way.
    assert alert_kinds(events, "disk_low") == ["critical", "info"]
    assert [e.data["kind"] for e in events if e.kind == "incident"] == ["storage_fault"]
    assert digest(auth_root / "t") == before  # nothing was repaired because of it


async def test_a_root_gone_read_only_under_idle_sessions_is_one_storage_incident_ended_when_writable(
    small_disk: Path, tmp_path: Path
) -> None:
    make_legacy_folder(tmp_path / "tpl", 10)
    auth_root = small_disk / "auth"
    auth_root.mkdir()
    copy_folder(tmp_path / "tpl", auth_root / "t")
    before = digest(auth_root / "t")
    async with monitor_on(auth_root) as (bus, watcher):
        await wait_event(bus, lambda e: e.kind == "snapshot" and e.session == "t")
        mark = bus.last_seq
        damage(f"mount -o remount,ro {small_disk}")
        try:
            assert await watcher.snapshot_all() == []  # the schedule meets the read-only root
            await asyncio.sleep(1.0)  # five scans: the failed retries join the incident quietly
        finally:
            damage(f"mount -o remount,rw {small_disk}")
        over = await wait_event(bus, lambda e: e.kind == "alert" and e.data.get("resolved"), after=mark, within=60)
        events = bus.since(mark)
    alerts = [(e.data["alert"], e.data["severity"]) for e in events if e.kind == "alert"]
    assert alerts == [("storage_fault", "critical"), ("storage_fault", "info")], alerts
    [incident] = [e for e in events if e.kind == "incident"]
    assert over.data["incident"] == incident.data["id"] and "storage_read_only" in incident.data["detail"]
    assert any(e.kind == "snapshot" and e.data["reason"] == "monitor-retry" for e in events)
    assert digest(auth_root / "t") == before
