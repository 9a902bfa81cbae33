"""Bridge nodes of one cluster as real `python -m bridge run` processes on this machine: each with
its own port, auth root and state folder, all on one PostgreSQL and one simulator.

`ClusterNode` starts, stops (SIGTERM: hand-over), kills (SIGKILL of the bridge and every process
it started, like a host that dies), pauses (SIGSTOP of the whole tree) and resumes a node, and
talks to its API. `link(node, simulator, sid)` creates a tenant through a node and links it with
a pairing code. `owners(dsn)` reads which node holds which tenant from the lease table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg

from tests.api.conftest import AUTH
from tests.cluster.pg import free_port
from tests.faults.service import bridge_env
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 180.0


class ClusterNode:
    """One bridge node (see the module docstring)."""

    def __init__(self, name: str, workdir: Path, simulator: SimulatorClient, dsn: str, ttl: float, **env: str) -> None:
        self.name = name
        self.workdir = workdir / name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = bridge_env(self.workdir / "auth", simulator, self.port, BRIDGE_CLUSTER_DSN=dsn,
                              BRIDGE_CLUSTER_LEASE_TTL=str(ttl), BRIDGE_CLUSTER_NODE_ID=name,
                              BRIDGE_STATE_DIR=str(self.workdir / "state"), BRIDGE_START_RAMP="0",
                              BRIDGE_CLUSTER_FORWARD_TIMEOUT="3", **env)
        self.log_path = self.workdir / "bridge.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> ClusterNode:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "run", cwd=self.workdir,
                env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self._http = aiohttp.ClientSession(self.base, headers=AUTH, timeout=aiohttp.ClientTimeout(total=60))
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.proc.returncode is None, f"node {self.name} exited:\n{self.log()[-4000:]}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get("/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return self
            assert time.monotonic() < deadline, f"node {self.name} never became ready:\n{self.log()[-4000:]}"
            await asyncio.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def tree(self) -> list[psutil.Process]:
        """The bridge process and everything it started (its Node runtimes)."""
        if not self.running:
            return []
        assert self.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        return []

    def signal_tree(self, sig: signal.Signals) -> None:
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL the node and every process it started (a host that dies)."""
        self.signal_tree(signal.SIGCONT)
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.proc is not None:
            await self.proc.wait()
        await self._close()

    async def stop(self) -> int:
        """SIGTERM (the hand-over) and wait for the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT)
            except TimeoutError:
                await self.kill()
                raise AssertionError(f"node {self.name} did not stop after SIGTERM:\n{self.log()[-12000:]}") from None
        await self._close()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self._http is not None, f"node {self.name} is not running"
        async with self._http.request(method, path, json=body) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        assert status < 300, f"{method} {path} on {self.name}: {status} {data}"
        return data

    async def wait_open(self, sid: str, timeout: float = TIMEOUT) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll the session through this node (forwarded to its owner) until it is open."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = await self.call("GET", f"/api/v1/sessions/{sid}")
            if status == 200 and last.get("state") == "open":
                return dict(last)
            await asyncio.sleep(0.25)
        raise AssertionError(f"session {sid} not open through {self.name} within {timeout:.0f} s: {last}")


async def link(node: ClusterNode, simulator: SimulatorClient, sid: str) -> dict[str, Any]:
    """Create `sid` through `node` and link it with a pairing code; its open session info."""
    phone = fresh_phone()
    await simulator.create_account(phone)
    await node.api("POST", "/api/v1/sessions", {"id": sid, "login": "pairing_code", "phone": phone})
    answer = await node.api("POST", f"/api/v1/sessions/{sid}/pairing-code", {"phone": phone})
    await simulator.enter_pairing_code(phone, answer["code"])
    info = await node.wait_open(sid)
    assert info["me"] and info["me"].split("@")[0].split(":")[0] == phone, info
    return info


def owners(dsn: str) -> dict[str, str | None]:
    """Tenant -> the node holding a live lease on it (None: nobody), by the database's clock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT session_id, CASE WHEN node_id IS NOT NULL AND expires_at > now() THEN node_id END "
            "FROM bridge_leases ORDER BY session_id"
        ).fetchall()
    return {str(sid): (str(node) if node is not None else None) for sid, node in rows}
