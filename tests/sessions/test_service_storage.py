"""`python -m bridge` as a real process: one bridge per auth root, and a storage fault at start
that keeps the API up and heals by itself (real tmpfs mounts; no simulator needed)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.sessions.registry import Registry, SessionRecord
from tests.api.service_helpers import bridge_process, free_port, wait_http
from tests.api.sse import next_message
from tests.sessions.disk import SmallDisk, small_disk

TIMEOUT = 120.0


def env_for(root: Path, state: Path, port: int) -> dict[str, str]:
    return {
        "BRIDGE_AUTH_ROOT": str(root),
        "BRIDGE_STATE_DIR": str(state),
        "BRIDGE_PORT": str(port),
        "BRIDGE_MONITOR_ENABLED": "false",
        "BRIDGE_WA_URL": "ws://127.0.0.1:9/ws",  # nothing listens: sessions never reach WhatsApp
        "BRIDGE_RECONNECT_INITIAL": "0.2",
        "BRIDGE_RECONNECT_MAX": "2.0",
        "BRIDGE_LOG_LEVEL": "WARNING",  # the output pipe is read only at the end
    }


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def test_a_second_bridge_on_the_same_auth_root_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    root = tmp_path / "auth"
    first_port, second_port = free_port(), free_port()
    async with bridge_process(tmp_path, env_for(root, tmp_path / "state", first_port), "run") as first:
        await wait_http(f"http://127.0.0.1:{first_port}/readyz")
        env = env_for(root, tmp_path / "state2", second_port)
        async with bridge_process(tmp_path, env, "run") as second:
            out, _ = await asyncio.wait_for(second.communicate(), TIMEOUT)
        assert second.returncode == 3
        lines = out.decode().strip().splitlines()
        assert len(lines) == 1 and "locked" in lines[0] and str(first.pid) in lines[0], lines
        assert (await get_json(f"http://127.0.0.1:{first_port}/readyz"))[0] == 200  # the first one is untouched
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), TIMEOUT)
        assert first.returncode == 0


def remount(disk: SmallDisk, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk.path)], check=True)


@pytest.mark.parametrize("fault", ["storage_read_only", pytest.param("storage_full", marks=pytest.mark.slow)])
async def test_a_storage_fault_at_start_keeps_the_api_up_says_what_is_wrong_and_heals_by_itself(
    tmp_path: Path, fault: str
) -> None:
    with small_disk("8m") as disk:
        root = disk.path / "auth"
        Registry(root / ".bridge").put(SessionRecord(id="wanted", desired_running=True))
        if fault == "storage_read_only":
            remount(disk, "ro")
        else:
            disk.fill()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            async with bridge_process(tmp_path, env_for(root, tmp_path / "state", port), "run") as proc:
                await wait_http(f"{base}/healthz")
                status, health = await get_json(f"{base}/healthz")
                assert health["status"] == "degraded" and health["storage_fault"]["code"] == fault
                status, ready = await get_json(f"{base}/readyz")
                assert status == 503 and ready["error"]["code"] == fault
                status, wanted = await get_json(f"{base}/api/v1/sessions/wanted")
                assert (wanted["state"], wanted["reason"]) == ("stopped", fault)
                alerts = await alerts_so_far(base)
                assert [(a["alert"], a["severity"]) for a in alerts] == [("storage_fault", "critical")]

                if fault == "storage_read_only":
                    remount(disk, "rw")
                else:
                    disk.free()
                await wait_http(f"{base}/readyz")
                status, health = await get_json(f"{base}/healthz")
                assert health["status"] == "ok" and health["storage_fault"] is None
                status, wanted = await get_json(f"{base}/api/v1/sessions/wanted")
                assert wanted["state"] != "stopped"  # started by itself once the root took writes
                # The probes alerted nothing more; the recovery ends the incident with one notice.
                after = await alerts_so_far(base)
                assert [(a["alert"], a["severity"], a.get("resolved")) for a in after] == [
                    ("storage_fault", "critical", None), ("storage_fault", "info", True)]
                assert after[0]["incident"] == after[1]["incident"]

                proc.send_signal(signal.SIGTERM)
                out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
                assert proc.returncode == 0
                assert b"Traceback" not in out
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                remount(disk, "rw")


async def alerts_so_far(base: str) -> list[dict[str, Any]]:
    """Every `alert` event published so far: the event stream replayed from the start, read for a
    few seconds (the replay of what exists takes far less; live events only add state changes)."""
    found: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/events?after=0") as response:
        assert response.status == 200
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                while True:
                    message = await next_message(response)
                    if message.data.get("kind") == "alert":
                        found.append(message.data["data"])
    return found
