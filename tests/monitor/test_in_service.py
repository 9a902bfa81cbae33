"""The monitor as `python -m bridge` runs it: bridge.app.serve starts `run_monitor` with the
service's bus, snapshots and session manager (passed as `manager=`)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from bridge.app import serve
from bridge.config import Settings
from bridge.monitor.incidents import IncidentLog
from bridge.store.snapshots import Snapshots
from tests.monitor.helpers import damage, digest, make_legacy_folder
from tests.monitor.telegram_receiver import TelegramReceiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_service_runs_the_monitor_and_it_restores_an_adopted_folder(
    auth_root: Path, tmp_path: Path, telegram: TelegramReceiver
) -> None:
    make_legacy_folder(auth_root / "adopted", 5)  # a legacy folder the manager registers, stopped
    expected = digest(auth_root / "adopted")
    settings = Settings(
        _env_file=None,
        auth_root=auth_root,
        port=free_port(),
        monitor_scan_interval=1.0,
        monitor_confirm_delay=0.2,
        telegram_token="9:svc",
        telegram_chat_id="5",
        telegram_api=telegram.base_url,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop=stop))
    journal = IncidentLog(settings.bridge_dir)
    try:
        deadline = time.monotonic() + 60
        while not any(m.registered for m in Snapshots(auth_root).list("adopted")):
            assert time.monotonic() < deadline, "the service's monitor took no snapshot"
            assert not service.done(), service
            await asyncio.sleep(0.1)
        damage(f"rm -rf {auth_root}/adopted")
        while not journal.read_all():
            assert time.monotonic() < deadline + 60, "no incident recorded"
            await asyncio.sleep(0.1)
        [message] = await telegram.wait_for(1)
    finally:
        stop.set()
        await asyncio.wait_for(service, 120)
    [incident] = journal.latest()
    assert incident.kind == "folder_removed" and incident.restored
    assert not incident.session_restarted  # the adopted session was stopped; nothing to restart
    assert digest(auth_root / "adopted") == expected
    assert "folder_removed" in message.text and "adopted" in message.text
