"""Standalone mode beside a live legacy Node tenant (real Baileys useMultiFileAuthState).

The first step of a migration: the bridge does not run the tenant yet; the monitor only reads its
folder, snapshots it as the legacy process writes, and puts it back after an `rm -rf` or a
truncated creds.json, so the legacy process never has to show a new QR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bridge.config import PROJECT_ROOT
from bridge.events import EventBus
from bridge.monitor.alerts import AlertSink, LogSink, TelegramSink
from bridge.monitor.folder_check import inspect_folder
from bridge.monitor.runner import run_monitor
from bridge.store.lock import RootLock
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import (
    LegacyTenant,
    copy_folder,
    damage,
    digest,
    make_legacy_folder,
    monitor_settings,
    wait_event,
)
from tests.monitor.telegram_receiver import TelegramReceiver

TOKEN = "42:standalone"


@asynccontextmanager
async def standalone_monitor(auth_root: Path, telegram: TelegramReceiver) -> AsyncIterator[EventBus]:
    """`run_monitor` exactly as `python -m bridge monitor` runs it (no session manager)."""
    settings = monitor_settings(auth_root)
    bus = EventBus()
    sinks: list[AlertSink] = [LogSink(), TelegramSink(TOKEN, "7", api_base=telegram.base_url)]
    task = asyncio.create_task(run_monitor(settings, bus, Snapshots(auth_root), sinks=sinks))
    try:
        yield bus
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_snapshot_matches(auth_root: Path, session: str, within: float = 60.0) -> dict[str, str]:
    """Wait until the newest snapshot holds exactly what is in the folder now; return that content."""
    deadline = time.monotonic() + within
    while True:
        current = digest(auth_root / session)
        latest = Snapshots(auth_root).latest(session)
        if latest is not None and {f.name: f.sha256 for f in latest.files} == current:
            return current
        assert time.monotonic() < deadline, "the monitor did not snapshot the legacy writer's latest state"
        await asyncio.sleep(0.2)


async def test_snapshots_follow_the_legacy_writer_and_rm_rf_is_undone(
    auth_root: Path, telegram: TelegramReceiver
) -> None:
    folder = auth_root / "tenant"
    tenant = await LegacyTenant.start(folder)
    try:
        noise = tenant.ready["noise"]
        async with standalone_monitor(auth_root, telegram) as bus:
            first = await wait_event(bus, lambda e: e.kind == "snapshot" and e.session == "tenant")
            assert first.data["registered"] is False
            await tenant.cmd("register")  # the QR was scanned: creds now carry `me`
            registered = await wait_event(
                bus, lambda e: e.kind == "snapshot" and e.data["registered"] is True, after=first.seq
            )
            await tenant.cmd("prekeys 1 30")  # Baileys uploads pre-keys and saves creds
            await wait_event(
                bus, lambda e: e.kind == "snapshot" and e.data["reason"] == "monitor-change", after=registered.seq
            )
            expected = await wait_snapshot_matches(auth_root, "tenant")
            assert len(expected) == 31

            deleted_at = time.monotonic()
            damage(f"rm -rf {folder}")
            incident = await wait_event(bus, lambda e: e.kind == "incident")
            restored_after = time.monotonic() - deleted_at
            await telegram.wait_for(1)
            await asyncio.sleep(1.0)  # anything else would have arrived by now

        assert incident.data["kind"] == "folder_removed" and incident.data["restored"] is True
        print(f"\nstandalone: rm -rf -> folder restored in {restored_after:.2f} s (target < 5 s)")
        assert digest(folder) == expected
        # The legacy process keeps working on the restored folder, with the same identity...
        assert (await tenant.cmd("creds"))["noise"] == noise
        await tenant.cmd("prekeys 31 5")
        assert (folder / "pre-key-35.json").is_file()
    finally:
        await tenant.close()
    # ...and after a restart it reads the registered creds back: no new QR.
    again = await LegacyTenant.start(folder)
    try:
        answer = await again.cmd("creds")
    finally:
        await again.close()
    assert answer["noise"] == noise and answer["me"]["id"].startswith("15550001111")
    criticals = [m for m in telegram.messages if "CRITICAL" in m.text]
    assert len(criticals) == 1 and "folder_removed" in criticals[0].text


async def test_truncated_creds_are_restored_before_the_legacy_tenant_restarts_with_a_new_identity(
    auth_root: Path, telegram: TelegramReceiver, tmp_path: Path
) -> None:
    made = make_legacy_folder(tmp_path / "template", 10)
    folder = auth_root / "tenant"
    copy_folder(tmp_path / "template", folder)
    async with standalone_monitor(auth_root, telegram) as bus:
        await wait_event(bus, lambda e: e.kind == "snapshot" and e.session == "tenant")
        damage(f": > {folder}/creds.json")  # a crash mid-write, a full disk, a careless script
        incident = await wait_event(bus, lambda e: e.kind == "incident")
        await telegram.wait_for(1)
    assert incident.data["kind"] == "creds_truncated" and incident.data["restored"]
    assert inspect_folder(folder).registered
    # Legacy Baileys would have called initAuthCreds() on the empty file; now it loads the old identity.
    tenant = await LegacyTenant.start(folder)
    try:
        answer = await tenant.cmd("creds")
    finally:
        await tenant.close()
    assert answer["noise"] == made["noise"] and answer["me"] is not None
    assert "creds_truncated" in telegram.messages[0].text


def test_cli_once_restores_and_reports_under_the_audit_hook(auth_root: Path, tmp_path: Path) -> None:
    """`python -m bridge monitor --root R --once` in a subprocess that carries the same no-delete hook."""
    folder = auth_root / "t"
    make_legacy_folder(folder, 5)
    expected = digest(folder)
    env = {**os.environ, "BRIDGE_MONITOR_CONFIRM_DELAY": "0.1", "BRIDGE_TELEGRAM_TOKEN": ""}
    cmd = [sys.executable, "-m", "tests.monitor.audited_cli", str(auth_root), "monitor", "--root", str(auth_root)]
    first = subprocess.run([*cmd, "--once"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"incidents": []}
    assert Snapshots(auth_root).latest("t") is not None
    damage(f"rm {folder}/creds.json")
    second = subprocess.run([*cmd, "--once"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1, second.stderr
    assert "AUDIT-VIOLATION" not in second.stderr
    [incident] = json.loads(second.stdout)["incidents"]
    assert incident["kind"] == "creds_deleted" and incident["restored"] is True
    assert digest(folder) == expected


def test_a_second_monitor_on_the_same_root_refuses_with_one_line(auth_root: Path) -> None:
    """Two monitors on one root would repair the same folder twice: the second one stops at once."""
    make_legacy_folder(auth_root / "t", 3)
    with RootLock(auth_root / ".bridge"):  # the running bridge or monitor
        proc = subprocess.run(
            [sys.executable, "-m", "bridge", "monitor", "--root", str(auth_root), "--once"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "already runs on this auth root" in line and "Traceback" not in line
    assert proc.stdout == ""
    assert Snapshots(auth_root).list("t") == []  # it did nothing at all


def test_cli_refuses_a_root_that_does_not_exist(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "monitor", "--root", str(tmp_path / "nope"), "--once"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "not a folder" in proc.stderr


async def test_cli_runs_until_sigterm_restores_a_deleted_folder_and_alerts_telegram(
    auth_root: Path, telegram: TelegramReceiver
) -> None:
    """The real `python -m bridge monitor --root R` process (under the no-delete audit hook)."""
    folder = auth_root / "t"
    make_legacy_folder(folder, 5)
    expected = digest(folder)
    env = {
        **os.environ,
        "BRIDGE_MONITOR_CONFIRM_DELAY": "0.1",
        "BRIDGE_MONITOR_SCAN_INTERVAL": "1",
        "BRIDGE_TELEGRAM_TOKEN": "5:cli",
        "BRIDGE_TELEGRAM_CHAT_ID": "11",
        "BRIDGE_TELEGRAM_API": telegram.base_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.monitor.audited_cli", str(auth_root), "monitor", "--root", str(auth_root),
        cwd=PROJECT_ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while Snapshots(auth_root).latest("t") is None:
            assert time.monotonic() < deadline and proc.returncode is None, "the CLI took no snapshot"
            await asyncio.sleep(0.1)
        damage(f"rm -rf {folder}")
        [message] = await telegram.wait_for(1)
        assert digest(folder) == expected
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert b"AUDIT-VIOLATION" not in err
    assert "folder_removed" in message.text and message.chat_id == "11"
