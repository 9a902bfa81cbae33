"""The service as operators run it: `python -m bridge` in a real subprocess.

- SIGTERM while a session's Node child runs: exit code 0, the child is gone, creds are on disk and
  the session comes back (desired state kept) on the next start.
- With no arguments it runs on the embedded defaults (auth under ./data/auth).
- It refuses a non-loopback bind without an API key (exit 2, a message saying what to set).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import psutil

from bridge.app import check_bind, is_loopback
from bridge.config import Settings
from bridge.errors import ConfigError
from tests.api.conftest import API_KEY, AUTH
from tests.api.service_helpers import bridge_process, free_port, wait_http
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0


def test_loopback_detection_and_bind_refusal(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")
    open_lan = Settings(_env_file=None, host="0.0.0.0", auth_root=tmp_path)  # type: ignore[call-arg]
    try:
        check_bind(open_lan)
    except ConfigError as exc:
        assert "BRIDGE_API_KEYS" in str(exc)
    else:
        raise AssertionError("a keyless non-loopback bind must be refused")
    check_bind(Settings(_env_file=None, host="0.0.0.0", api_keys=["k" * 20], auth_root=tmp_path))  # type: ignore[call-arg]


async def test_sigterm_stops_sessions_and_exits_0_with_no_child_left(
    tmp_path: Path, simulator: SimulatorClient
) -> None:
    port = free_port()
    env = {
        "BRIDGE_API_KEYS": API_KEY,
        "BRIDGE_PORT": str(port),
        "BRIDGE_AUTH_ROOT": str(tmp_path / "auth"),
        "BRIDGE_WA_URL": simulator.ws_url,
        "BRIDGE_WA_TRUST_ROOT": simulator.root_pub,
    }
    base = f"http://127.0.0.1:{port}"
    async with bridge_process(tmp_path, env, "run") as proc:
        await wait_http(base + "/readyz", AUTH)
        async with aiohttp.ClientSession(base, headers=AUTH) as http:
            async with http.post("/api/v1/sessions", json={"id": "svc"}) as response:
                assert response.status == 201, await response.text()
            for _ in range(int(TIMEOUT * 5)):
                async with http.get("/api/v1/sessions/svc") as response:
                    if (await response.json())["state"] == "qr":
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the session never showed a QR")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("node" in c.name() for c in children), "the session runs in a Node child"
        async with aiohttp.ClientSession(base, headers=AUTH) as http:
            async with http.get("/api/v1/events") as stream:
                assert stream.status == 200
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(stream.content.read(), TIMEOUT)  # an open SSE stream does not hold it up
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, out.decode()[-3000:]
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        log = out.decode()
        assert "shutdown complete" in log
    registry = (tmp_path / "auth" / ".bridge" / "sessions.json").read_text()
    assert '"svc"' in registry


async def test_no_arguments_runs_on_the_defaults(tmp_path: Path) -> None:
    port = free_port()
    async with bridge_process(tmp_path, {"BRIDGE_PORT": str(port), "BRIDGE_MONITOR_ENABLED": "false"}) as proc:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        assert (tmp_path / "data" / "auth").is_dir()
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), TIMEOUT)
        assert proc.returncode == 0


async def test_non_loopback_bind_without_key_is_refused(tmp_path: Path) -> None:
    env = {"BRIDGE_HOST": "0.0.0.0", "BRIDGE_PORT": str(free_port()), "BRIDGE_API_KEYS": ""}
    async with bridge_process(tmp_path, env, "run") as proc:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert b"BRIDGE_API_KEYS" in out


async def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        env = {"BRIDGE_PORT": str(port), "BRIDGE_MONITOR_ENABLED": "false"}
        async with bridge_process(tmp_path, env, "run") as proc:
            out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}".encode() in out and b"Traceback" not in out
