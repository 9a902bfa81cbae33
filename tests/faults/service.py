"""The whole bridge as an operator runs it, driven only from outside: a real `python -m bridge`
process (under the no-delete audit hook, tests/faults/audited_bridge.py), its HTTP API, and its
event stream read over SSE from the first event on.

`BridgeProcess` starts, stops and kills the process, keeps its combined stdout/stderr in a file
(`log()`) and every SSE event in `events` (a list; `mark()` is a position in it). The fault tests
link tenants through the API (tenants.py), damage the auth root from another process (damage.py)
and judge the outcome from the events, the API and the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import psutil

from bridge.events import canonical_kind
from tests.api.conftest import API_KEY, AUTH
from tests.api.test_service import free_port
from tests.simulator.client import SimulatorClient

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0

Event = dict[str, Any]

#: `setpriv` prefix that runs a process as root WITHOUT the capabilities that bypass file
#: permissions, so `chmod 000` bites. uid 0 keeps owning (and so traversing) the Python install
#: under /root; dropping the capabilities from the bounding set keeps execve from granting them back.
NO_DAC = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
)


def bridge_env(auth_root: Path, simulator: SimulatorClient, port: int, **overrides: str) -> dict[str, str]:
    """BRIDGE_* for one test: the simulator, a private root, fast retries and scans, all events kept."""
    env = {
        "BRIDGE_API_KEYS": API_KEY,
        "BRIDGE_PORT": str(port),
        "BRIDGE_AUTH_ROOT": str(auth_root),
        "BRIDGE_WA_URL": simulator.ws_url,
        "BRIDGE_WA_TRUST_ROOT": simulator.root_pub,
        "BRIDGE_RECONNECT_INITIAL": "0.2",
        "BRIDGE_RECONNECT_MAX": "2",
        "BRIDGE_RESTART_BACKOFF_INITIAL": "0.2",
        "BRIDGE_MONITOR_SCAN_INTERVAL": "1",
        "BRIDGE_MONITOR_MIN_FREE_MB": "0",
        "BRIDGE_EVENTS_BUFFER": "100000",
        "BRIDGE_SSE_HEARTBEAT": "1",
        "BRIDGE_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


class BridgeProcess:
    """One `python -m bridge run` child; see the module docstring."""

    def __init__(
        self,
        auth_root: Path,
        simulator: SimulatorClient,
        workdir: Path,
        *,
        name: str = "bridge",
        prefix: Sequence[str] = (),
        **env: str,
    ) -> None:
        self.auth_root = auth_root
        self.simulator = simulator
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = bridge_env(auth_root, simulator, self.port, **env)
        self.prefix = tuple(prefix)
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[Event] = []  # every event seen, across restarts (the event log numbers on)
        self._last_seq = 0
        self._reader: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._started_at = 0.0

    # ----- process ----------------------------------------------------------------------
    async def start(self, *, ready: bool = True) -> BridgeProcess:
        """Start the process; wait until /healthz answers (and /readyz, unless `ready=False`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [*self.prefix, sys.executable, "-m", "tests.faults.audited_bridge", str(self.auth_root), "run"]
        with self._open_log(command) as log:
            self.proc = await asyncio.create_subprocess_exec(
                *command, cwd=self.workdir, env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self._started_at = time.time()
        self._http = aiohttp.ClientSession(self.base, headers=AUTH, timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        await self._wait_http("/healthz")
        self._reader = asyncio.create_task(self._read_events(), name="sse-reader")
        if ready:
            await self._wait_http("/readyz")
        return self

    def _open_log(self, command: list[str]) -> BinaryIO:
        log = open(self.log_path, "ab")  # closed by the caller's `with`
        log.write(f"==== start {time.strftime('%H:%M:%S')}: {' '.join(command)}\n".encode())
        log.flush()
        return log

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _wait_http(self, path: str) -> None:
        assert self._http is not None and self.proc is not None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"the bridge exited ({self.proc.returncode}) before {path} answered:\n"
                                     + self.log()[-4000:])
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get(path, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.base}{path} never answered 200:\n{self.log()[-4000:]}")

    async def wait_exit(self, timeout: float = TIMEOUT) -> int:  # noqa: ASYNC109
        """Wait for the process to end by itself; its exit code."""
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._close_reader()
        return code

    async def stop(self) -> int:
        """SIGTERM and wait for a clean shutdown; the exit code (0 expected)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT)
            except TimeoutError:
                await self.kill()
                raise AssertionError("the bridge did not stop within 120 s of SIGTERM") from None
        await self._close_reader()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def kill(self) -> None:
        """SIGKILL the bridge and every process it started (test teardown)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await self._close_reader()

    async def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def log(self) -> str:
        """Everything the process wrote on stdout and stderr, all starts included."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ----- events -----------------------------------------------------------------------
    async def _read_events(self) -> None:
        """Collect every SSE event of this process from the first one on (reconnecting with
        Last-Event-ID if the stream breaks while the process lives)."""
        assert self._http is not None
        while self.running:
            try:
                async with self._http.get(
                    "/api/v1/events", params={"after": str(self._last_seq)}, timeout=aiohttp.ClientTimeout(total=None)
                ) as stream:
                    data: list[str] = []
                    async for raw in stream.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("data: "):
                            data.append(line[6:])
                        elif line == "" and data:
                            event = json.loads("\n".join(data))
                            data.clear()
                            if isinstance(event, dict) and int(event.get("seq", 0)) > self._last_seq:
                                self._last_seq = int(event["seq"])
                                self.events.append(event)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.2)

    def mark(self) -> int:
        """A position in `events`: `since(mark)` is what happened after this call."""
        return len(self.events)

    def since(self, mark: int, session: str | None = ..., kind: str | None = None) -> list[Event]:  # type: ignore[assignment]
        """Events after `mark`, of one session (or session-less with None; all if not given)."""
        return [
            e for e in self.events[mark:]
            if (session is ... or e.get("session") == session) and (kind is None or is_kind(e, kind))
        ]

    async def wait_event(
        self, match: Callable[[Event], bool], *, after: int = 0, timeout: float = TIMEOUT  # noqa: ASYNC109
    ) -> Event:
        """The first event after position `after` that matches (already seen or still to come)."""
        deadline = time.monotonic() + timeout
        index = after
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if match(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event within {timeout:.0f} s; after it: "
                                     f"{[summary(e) for e in self.events[after:]][-40:]}")
            if not self.running:
                raise AssertionError(f"the bridge exited ({self.proc.returncode if self.proc else '?'}):\n"
                                     + self.log()[-4000:])
            await asyncio.sleep(0.05)

    async def wait_state(
        self, session: str, states: set[str], *, after: int = 0, timeout: float = TIMEOUT  # noqa: ASYNC109
    ) -> Event:
        """The first `state` event of `session` into one of `states` after position `after`."""
        return await self.wait_event(
            lambda e: e.get("session") == session and is_kind(e, "state") and e["data"]["state"] in states,
            after=after, timeout=timeout,
        )

    # ----- API --------------------------------------------------------------------------
    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API request; (status, decoded JSON body or text)."""
        assert self._http is not None, "the bridge is not running"
        async with self._http.request(method, path, json=body) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """An API request that must succeed (2xx); its JSON body."""
        status, answer = await self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status} {answer}"
        return answer

    async def session(self, session_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api("GET", f"/api/v1/sessions/{session_id}")
        return answer


def is_kind(event: Event, kind: str) -> bool:
    """`kind` by its dotted name or its first name (`state` is `session.state`, docs/api.md)."""
    return canonical_kind(str(event.get("kind"))) == canonical_kind(kind)


def summary(event: Event) -> str:
    """One line per event for assertion messages."""
    data = event.get("data") or {}
    detail = data.get("state") or data.get("alert") or data.get("kind") or data.get("reason") or ""
    return f"{event.get('seq')}:{event.get('session')}:{event.get('kind')}:{detail}"
