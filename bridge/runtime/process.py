"""Supervision of one Node runtime process (hosting 1..K sessions), in supervisor's words.

States: STOPPED -> STARTING -> RUNNING; on an unexpected exit EXITED -> BACKOFF -> STARTING ...;
N exits within a window -> FATAL (plus a critical alert on the EventBus: restarting forever would
hide a broken install and hammer WhatsApp). `stop()` goes STOPPING -> STOPPED: a `stop` command per
hosted session (their pending auth writes become durable), stdin closed, then SIGTERM, then SIGKILL,
with the grace times from Settings.

No orphans: the child gets its own process group (signals reach the whole group) and exits by
itself when its stdin closes or its parent changes, which is what happens when the bridge is killed
with SIGKILL and cannot clean up. Node runs under the permission model with read access to the
runtime, node_modules and the media spool only (docs/media.md).

Stderr is read continuously (a full stderr pipe would freeze the child) and logged with the
runtime name (the session id in the default one-session-per-runtime mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import msgspec

from bridge.config import Settings
from bridge.delivery import Backoff
from bridge.errors import NodeRuntimeError
from bridge.events import EventBus
from bridge.ipc import protocol as p
from bridge.ipc.channel import Channel, ChannelClosed, CommandFailed, EventHandler, RequestHandler
from bridge.media.spool import readable_spool
from bridge.metrics import RUNTIME_RESTARTS

log = logging.getLogger(__name__)

STDERR_LINE_MAX = 4096
STDERR_TAIL = 50


class ProcessState(enum.StrEnum):
    """supervisord's process states, so operators read them without a glossary."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


StateHandler = Callable[[ProcessState, str], None]


@functools.cache
def permission_flag(node: str) -> str:
    """Node 20 spells the permission model `--experimental-permission`; Node >= 22 `--permission`."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
        major = int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise NodeRuntimeError(f"cannot run {node!r} --version ({exc}); set BRIDGE_NODE to a Node >= 20 binary") \
            from exc
    if major < 20:
        raise NodeRuntimeError(f"{node} is Node {major}; the runtime needs Node >= 20 (permission model)")
    return "--experimental-permission" if major < 22 else "--permission"


def media_env(settings: Settings) -> dict[str, str]:
    """A test media host's CA for Baileys' uploads (`BRIDGE_MEDIA_TRUST_CA`); nothing in production."""
    if not settings.media_trust_ca:
        return {}
    return {"NODE_EXTRA_CA_CERTS": os.path.abspath(settings.media_trust_ca)}


class NodeProcess:
    """One supervised Node runtime. See the module docstring for the life cycle."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        on_request: RequestHandler,
        on_event: EventHandler,
        on_state: StateHandler | None = None,
        bus: EventBus | None = None,
        sessions: Collection[str] | None = None,
        script: Path | None = None,
        node_args: Sequence[str] = (),
        extra_read: Sequence[Path] = (),
        startsecs: float = 1.0,
    ) -> None:
        """`sessions` is the set of hosted session ids (e.g. the `AuthRequestHandler`): requests
        for other sessions are violations, and `stop()` sends each of them a `stop` command.
        `script`, `node_args` and `extra_read` exist for tests and benchmarks (stand-in children,
        preloads); production uses node-runtime/index.mjs with no extras."""
        self.settings = settings
        self.name = name
        self._on_request = on_request
        self._on_event = on_event
        self._on_state = on_state
        self._bus = bus
        self._sessions = sessions
        self._script = script or settings.node_runtime_dir / "index.mjs"
        self._node_args = list(node_args)
        self._extra_read = list(extra_read)
        self._startsecs = startsecs
        self._state = ProcessState.STOPPED
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._state_changed = asyncio.Event()
        self._exits: deque[float] = deque()
        self._backoff = Backoff(settings.restart_backoff_initial, settings.restart_backoff_max)
        self._violations: deque[float] = deque()
        self._killing: asyncio.Task[None] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.restarts = 0
        self.violations = 0
        self.last_exit_code: int | None = None

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def command(self) -> list[str]:
        """The exact argv used to start the child (no write permission, read-only paths)."""
        s = self.settings
        reads = [s.node_runtime_dir, s.node_modules_dir, readable_spool(s), *self._extra_read]
        return [
            s.node,
            permission_flag(s.node),
            *(f"--allow-fs-read={Path(r).resolve()}" for r in reads),
            *self._node_args,
            str(self._script),
        ]

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - bounded wait for RUNNING
        """Start supervising and wait until the child is RUNNING (or FATAL: raises NodeRuntimeError)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._wake.clear()
            self._exits.clear()
            self._task = asyncio.create_task(self._supervise(), name=f"node-{self.name}")
        deadline = time.monotonic() + timeout
        while self._state is not ProcessState.RUNNING:
            if self._state is ProcessState.FATAL or (self._task.done() and self._state is ProcessState.STOPPED):
                raise NodeRuntimeError(
                    f"Node runtime {self.name} could not be started ({self._state}); last stderr: "
                    f"{self._stderr_summary()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise NodeRuntimeError(f"Node runtime {self.name} not running after {timeout:g}s ({self._state})",
                                       code="runtime_timeout")
            self._state_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_changed.wait(), left)

    async def call(self, session: str, cmd: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:  # noqa: ASYNC109 - contract in architecture.md
        """Send a command to the runtime (see docs/protocol.md) and return its result."""
        channel = self._channel
        if channel is None or channel.closed or self._state not in (ProcessState.RUNNING, ProcessState.STARTING):
            raise ChannelClosed(f"Node runtime {self.name} is {self._state}; start it before sending {cmd!r}")
        return await channel.call(session, cmd, args, timeout or self.settings.ipc_request_timeout)

    async def stop(self) -> None:
        """Graceful stop: `stop` per hosted session, close stdin, SIGTERM, SIGKILL (Settings graces)."""
        self._stopping = True
        self._wake.set()
        task = self._task
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._set_state(ProcessState.STOPPING, "stop requested")
            try:
                async with asyncio.timeout(self.settings.stop_grace):
                    await self._polite_stop(proc)
            except TimeoutError:
                await self._terminate(proc, "did not exit within stop_grace")
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        if self._state is not ProcessState.FATAL:
            self._set_state(ProcessState.STOPPED, "stopped")

    # ------------------------------------------------------------------ supervision

    async def _supervise(self) -> None:
        while not self._stopping:
            code = await self._run_once()
            self.last_exit_code = code
            if self._stopping:
                break
            now = time.monotonic()
            self._exits.append(now)
            while self._exits and now - self._exits[0] > self.settings.crash_loop_window:
                self._exits.popleft()
            self._set_state(ProcessState.EXITED, f"exit code {code}")
            if len(self._exits) >= self.settings.crash_loop_exits:
                message = (f"Node runtime {self.name} exited {len(self._exits)} times within "
                           f"{self.settings.crash_loop_window:g}s; not restarting. Check the install "
                           f"(`npm ci`), BRIDGE_NODE and the stderr log, then start the session again. "
                           f"Last stderr: {self._stderr_summary()}")
                log.error(message)
                self._set_state(ProcessState.FATAL, "crash loop")
                if self._bus is not None:
                    self._bus.alert(self.name, "runtime_crash_loop", "critical", message,
                                    exits=len(self._exits), exit_code=code)
                return
            delay = self._backoff.delay(len(self._exits))
            self._set_state(ProcessState.BACKOFF, f"restart in {delay:.2f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._stopping:
                break
            self.restarts += 1
            RUNTIME_RESTARTS.labels(self.name).inc()
        self._set_state(ProcessState.STOPPED, "stopped")

    async def _run_once(self) -> int | None:
        self._set_state(ProcessState.STARTING, "spawning")
        env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
        env.update(BRIDGE_SESSION=self.name, BRIDGE_PARENT_PID=str(os.getpid()),
                   BRIDGE_NODE_LOG_LEVEL=self.settings.node_log_level,
                   BRIDGE_IPC_MAX_LINE=str(self.settings.ipc_max_line))
        env.update(media_env(self.settings))
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env,
                cwd=str(self.settings.node_runtime_dir),
            )
        except (OSError, NodeRuntimeError) as exc:
            log.error("[%s] cannot start the Node runtime: %s", self.name, exc)
            self.stderr_tail.append(str(exc))
            return None
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self._violations.clear()
        channel = Channel(proc.stdout, proc.stdin, max_line=self.settings.ipc_max_line,
                          on_request=self._on_request, on_event=self._event, on_violation=self._violation,
                          sessions=self._sessions, name=self.name)
        self._channel = channel
        reader = asyncio.create_task(channel.run(), name=f"ipc-{self.name}")
        stderr = asyncio.create_task(self._pump_stderr(proc.stderr), name=f"stderr-{self.name}")
        settle = asyncio.create_task(self._settle(proc), name=f"settle-{self.name}")
        heartbeat = asyncio.create_task(self._heartbeat(proc, channel), name=f"heartbeat-{self.name}")
        try:
            code = await proc.wait()
        finally:
            settle.cancel()
            heartbeat.cancel()
            for task in (reader, stderr):
                try:
                    await asyncio.wait_for(task, 5.0)
                except (TimeoutError, Exception):
                    task.cancel()
            await channel.aclose()
        log.log(logging.INFO if self._stopping else logging.WARNING, "[%s] Node runtime pid %s exited with %s",
                self.name, proc.pid, code)
        return code

    async def _settle(self, proc: asyncio.subprocess.Process) -> None:
        """RUNNING after `ready`, or after `startsecs` alive for a child that never says it."""
        await asyncio.sleep(self._startsecs)
        if proc.returncode is None and self._state is ProcessState.STARTING:
            self._set_state(ProcessState.RUNNING, f"alive for {self._startsecs:g}s")

    async def _heartbeat(self, proc: asyncio.subprocess.Process, channel: Channel) -> None:
        """Restart a runtime that is alive but deaf (a stuck event loop, a wedged stdin reader).

        Exits and crashes are seen by `proc.wait()`; a process that still runs but answers nothing
        would otherwise only show up as timeouts of whatever the sessions ask next. A ping that
        gets any answer, even an error, proves the runtime reads and writes its pipes."""
        interval = self.settings.runtime_heartbeat_interval
        if interval <= 0:
            return
        while proc.returncode is None:
            await asyncio.sleep(interval)
            if self._state is not ProcessState.RUNNING or self._stopping or self._killing is not None:
                continue
            try:
                await channel.call(self.name, "ping", {}, self.settings.runtime_heartbeat_timeout)
            except CommandFailed:
                continue
            except NodeRuntimeError as exc:
                if exc.code != "runtime_timeout" or proc.returncode is not None or self._stopping:
                    return
                message = (f"Node runtime {self.name} did not answer a ping within "
                           f"{self.settings.runtime_heartbeat_timeout:g}s; restarting it. "
                           f"Last stderr: {self._stderr_summary()}")
                log.error(message)
                if self._bus is not None:
                    self._bus.alert(self.name, "runtime_unresponsive", "warning", message)
                await self._terminate(proc, "no answer to the heartbeat ping")
                return

    async def _event(self, evt: p.Evt, data: msgspec.Struct) -> None:
        if evt.name == "ready" and isinstance(data, p.ReadyData):
            if not (data.permission and data.fs_write_denied):
                message = (f"Node runtime {self.name} (Node {data.node}) reports that the permission model is "
                           "off or allows writes; check BRIDGE_NODE (Node >= 20) and that nothing adds "
                           "--allow-fs-write. Auth still goes through Python only.")
                log.error(message)
                if self._bus is not None:
                    self._bus.alert(self.name, "runtime_permissions", "critical", message)
            if self._state is ProcessState.STARTING:
                self._set_state(ProcessState.RUNNING, "ready")
        result = self._on_event(evt, data)
        if result is not None:
            await result

    def _violation(self, exc: p.MessageRejected) -> None:
        self.violations += 1
        now = time.monotonic()
        self._violations.append(now)
        while self._violations and now - self._violations[0] > 60.0:
            self._violations.popleft()
        limit = self.settings.ipc_violations_per_minute
        proc = self._proc
        if len(self._violations) > limit and proc is not None and proc.returncode is None and self._killing is None:
            log.error("[%s] %d IPC violations within a minute; restarting the Node runtime", self.name,
                      len(self._violations))
            self._killing = asyncio.create_task(self._terminate(proc, "too many IPC violations"))
            self._killing.add_done_callback(lambda _t: setattr(self, "_killing", None))

    async def _polite_stop(self, proc: asyncio.subprocess.Process) -> None:
        channel = self._channel
        if channel is not None and not channel.closed and self._sessions is not None:
            calls = [channel.call(s, "stop", {}, self.settings.stop_grace) for s in list(self._sessions)]
            await asyncio.gather(*calls, return_exceptions=True)
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        await proc.wait()

    async def _terminate(self, proc: asyncio.subprocess.Process, why: str) -> None:
        """SIGTERM the process group, then SIGKILL after term_grace."""
        log.warning("[%s] terminating Node runtime pid %s: %s", self.name, proc.pid, why)
        self._signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.settings.term_grace)
        except TimeoutError:
            log.error("[%s] Node runtime pid %s ignored SIGTERM; SIGKILL", self.name, proc.pid)
            self._signal_group(proc, signal.SIGKILL)
            await proc.wait()

    @staticmethod
    def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        # The child leads its own group (start_new_session), so this reaches it and anything it
        # started. Not Popen.send_signal: its poll() would reap the child behind asyncio's back.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        """Log every stderr line, tagged with the runtime name; bounded per line."""
        partial = b""
        while True:
            chunk = await stream.read(1 << 16)
            if not chunk:
                break
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()[:STDERR_LINE_MAX]
            for raw in lines:
                self._stderr_line(raw)
        if partial:
            self._stderr_line(partial)

    def _stderr_line(self, raw: bytes) -> None:
        text = raw[:STDERR_LINE_MAX].decode("utf-8", "replace").rstrip()
        if not text:
            return
        self.stderr_tail.append(text)
        log.info("[node %s] %s", self.name, text)

    def _stderr_summary(self) -> str:
        return " | ".join(list(self.stderr_tail)[-5:])[-1000:] or "(none)"

    def _set_state(self, state: ProcessState, reason: str) -> None:
        previous, self._state = self._state, state
        if previous is state:
            return
        self._state_changed.set()
        log.info("[%s] runtime %s -> %s (%s)", self.name, previous, state, reason)
        if self._bus is not None:
            self._bus.publish(self.name, "runtime", {"state": str(state), "previous": str(previous),
                                                     "reason": reason, "pid": self.pid})
        if self._on_state is not None:
            try:
                self._on_state(state, reason)
            except Exception:
                log.exception("[%s] state handler failed", self.name)
