"""Line framing and correlation over a pair of asyncio streams (the Node child's stdout/stdin).

Why a hand-written reader instead of `StreamReader.readline`: a hostile or buggy child may send a
50 MiB line. We read fixed-size chunks and, once a partial line passes `max_line`, switch to
discarding until the next newline, so memory stays bounded by `max_line` plus one chunk whatever
the child does.

Back-pressure: requests from Node go into a bounded queue per session and are served in arrival
order (a `get` after a `set` must see the set). When a queue is full the reader stops reading,
the pipe fills, and Node's writes block: a flood cannot grow our memory.

Every violation (too long, undecodable, unknown op, reply to an unknown id, a request Python
refuses) is counted in `IPC_VIOLATIONS`, logged with the session id, answered with an error when
it had an id, and reported to `on_violation` (the supervisor restarts a child past a threshold).
It never raises out of `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Container
from typing import Any

import msgspec

from bridge.errors import BridgeError, ErrorCode, HostileNameError, NodeRuntimeError, ProtocolError
from bridge.ipc import protocol as p
from bridge.metrics import IPC_REQUESTS, IPC_VIOLATIONS

log = logging.getLogger(__name__)

RequestHandler = Callable[[p.Req, msgspec.Struct], Awaitable[Any]]
EventHandler = Callable[[p.Evt, msgspec.Struct], Awaitable[None] | None]
ViolationHandler = Callable[[p.MessageRejected], None]

READ_CHUNK = 1 << 16
_SESSION_RE = re.compile(p.SESSION_ID_PATTERN)


class CommandFailed(NodeRuntimeError):
    """The runtime answered a command with an error; `code` is the runtime's error code."""


class ChannelClosed(NodeRuntimeError):
    """The runtime's stdout closed (it exited or was killed) before answering."""

    code = "runtime_gone"


class Channel:
    """One runtime's stdio, as calls (Python -> Node), requests (Node -> Python) and events."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_line: int = p.DEFAULT_MAX_LINE,
        on_request: RequestHandler,
        on_event: EventHandler,
        on_violation: ViolationHandler | None = None,
        sessions: Container[str] | None = None,
        name: str = "runtime",
        queue_size: int = 256,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_line = max_line
        self._on_request = on_request
        self._on_event = on_event
        self._on_violation = on_violation
        self._sessions = sessions
        self._name = name
        self._queue_size = queue_size
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._queues: dict[str, asyncio.Queue[p.Req | None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._write_lock = asyncio.Lock()
        self._closed = False
        self.violations = 0
        self.lines = 0

    # ------------------------------------------------------------------ Python -> Node

    async def call(self, session: str, cmd: str, args: dict[str, Any] | None = None,
                   timeout: float = 30.0) -> Any:  # noqa: ASYNC109 - contract in architecture.md
        """Send a command and wait for its result.

        Raises `CommandFailed` when Node answers with an error, `ChannelClosed` when the runtime is
        gone, `NodeRuntimeError` (code `runtime_timeout`) when no answer comes within `timeout`.
        """
        if self._closed:
            raise ChannelClosed(f"runtime {self._name} is not running; start the session again")
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (session, future)
        try:
            # The timeout covers the write too: a child that stops reading its stdin blocks drain().
            async with asyncio.timeout(timeout):
                await self._send(p.Cmd(id=msg_id, s=session, cmd=cmd, args=args or {}))
                return await future
        except TimeoutError:
            raise NodeRuntimeError(
                f"runtime {self._name} did not answer {cmd!r} for session {session} within {timeout:g}s; "
                "it may be stuck: check its stderr log, the supervisor restarts it if it stays silent",
                code="runtime_timeout",
            ) from None
        finally:
            self._pending.pop(msg_id, None)

    async def _send(self, msg: p.Message) -> None:
        data = p.encode(msg)
        async with self._write_lock:
            if self._writer.is_closing():
                raise ChannelClosed(f"runtime {self._name}'s stdin is closed")
            self._writer.write(data)
            try:
                await self._writer.drain()
            except (ConnectionError, BrokenPipeError) as exc:
                raise ChannelClosed(f"runtime {self._name}'s stdin is closed: {exc}") from exc

    # ------------------------------------------------------------------ Node -> Python

    async def run(self) -> None:
        """Read lines until EOF, then fail every pending call. Never raises on bad input."""
        buf = bytearray()
        discarding = 0  # >0 while skipping the rest of an oversize line (bytes seen so far)
        try:
            while True:
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    break
                start = 0
                while True:
                    nl = chunk.find(b"\n", start)
                    if nl < 0:
                        rest = len(chunk) - start
                        if discarding:
                            discarding += rest
                        else:
                            buf += chunk[start:]
                            if len(buf) > self._max_line:
                                discarding = len(buf)
                                buf.clear()
                        break
                    if discarding:
                        self._too_long(discarding + nl - start)
                        discarding = 0
                    elif buf:
                        buf += chunk[start:nl]
                        line = bytes(buf)
                        buf.clear()
                        await self._line(line)
                    else:
                        await self._line(chunk[start:nl])
                    start = nl + 1
            if discarding:
                self._too_long(discarding)
        finally:
            await self._shutdown()

    def _too_long(self, size: int) -> None:
        self.violation(p.MessageRejected(
            f"discarded an IPC line of at least {size} bytes (limit {self._max_line})", kind="too_long"))

    async def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        try:
            msg = p.decode(line, max_line=self._max_line)
        except p.MessageRejected as exc:
            self.violation(exc)
            if exc.msg_id is not None and exc.t == "req" and exc.session and self._valid_session(exc.session):
                await self._reply_error(exc.msg_id, exc.session, exc)
            return
        if isinstance(msg, p.Res):
            self._resolve(msg)
        elif isinstance(msg, p.Evt):
            await self._event(msg)
        elif isinstance(msg, p.Req):
            await self._enqueue(msg)
        else:
            rejected = p.MessageRejected(f"the runtime may not send commands (got {msg.cmd!r})",
                                         kind="bad_direction", msg_id=msg.id, session=msg.s)
            self.violation(rejected)
            await self._reply_error(msg.id, msg.s, rejected)

    @staticmethod
    def _valid_session(session: str) -> bool:
        return _SESSION_RE.match(session) is not None

    def _resolve(self, res: p.Res) -> None:
        entry = self._pending.get(res.id)
        if entry is None or entry[0] != res.s:
            self.violation(p.MessageRejected(f"reply to unknown command id {res.id}", kind="unknown_id",
                                             session=res.s))
            return
        future = entry[1]
        if future.done():
            return
        if res.ok:
            future.set_result(res.result)
        else:
            err = res.error or p.ErrorInfo(code="runtime_error", message="no error details")
            future.set_exception(CommandFailed(f"runtime: {err.message}", code=err.code))

    async def _event(self, evt: p.Evt) -> None:
        try:
            data = p.validate_args(evt)
        except p.MessageRejected as exc:
            self.violation(exc)
            return
        try:
            result = self._on_event(evt, data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("[%s] event handler failed for %s", evt.s, evt.name)

    async def _enqueue(self, req: p.Req) -> None:
        queue = self._queues.get(req.s)
        if queue is None:
            queue = asyncio.Queue(self._queue_size)
            self._queues[req.s] = queue
            self._workers[req.s] = asyncio.create_task(self._serve(queue), name=f"ipc-{self._name}-{req.s}")
        await queue.put(req)  # blocks the reader when full: back-pressure onto the child's pipe

    async def _serve(self, queue: asyncio.Queue[p.Req | None]) -> None:
        while True:
            req = await queue.get()
            if req is None:
                return
            await self._handle(req)

    async def _handle(self, req: p.Req) -> None:
        try:
            args = p.validate_args(req)
            IPC_REQUESTS.labels(req.op).inc()
            result = await self._on_request(req, args)
        except p.MessageRejected as exc:
            self.violation(exc)
            await self._reply_error(req.id, req.s, exc)
            return
        except HostileNameError as exc:
            self.violation(p.MessageRejected(exc.message, kind="hostile_name", msg_id=req.id, session=req.s))
            await self._reply_error(req.id, req.s, exc)
            return
        except ProtocolError as exc:
            self.violation(p.MessageRejected(exc.message, kind="refused", msg_id=req.id, session=req.s))
            await self._reply_error(req.id, req.s, exc)
            return
        except BridgeError as exc:
            log.warning("[%s] %s failed: %s", req.s, req.op, exc.message)
            await self._reply_error(req.id, req.s, exc)
            return
        except Exception as exc:
            log.exception("[%s] %s failed unexpectedly", req.s, req.op)
            await self._reply_error(req.id, req.s, BridgeError(f"internal error: {type(exc).__name__}",
                                                               code=ErrorCode.INTERNAL))
            return
        with contextlib.suppress(ChannelClosed):
            await self._send(p.ok(req.id, req.s, result))

    async def _reply_error(self, msg_id: int, session: str, exc: BridgeError) -> None:
        with contextlib.suppress(ChannelClosed):
            await self._send(p.fail(msg_id, session, exc.code, exc.message[:1000]))

    def violation(self, exc: p.MessageRejected) -> None:
        """Count, log and report one protocol violation (also used by the request handler)."""
        self.violations += 1
        session = exc.session if exc.session and (self._sessions is None or exc.session in self._sessions) \
            else "unknown"
        IPC_VIOLATIONS.labels(session, exc.kind).inc()
        log.warning("[%s] IPC violation (%s) from %s: %s", session, exc.kind, self._name, exc.message[:300])
        if self._on_violation is not None:
            try:
                self._on_violation(exc)
            except Exception:
                log.exception("violation handler failed")

    async def _shutdown(self) -> None:
        self._closed = True
        for _session, future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(
                    f"runtime {self._name} exited before answering; see its stderr log"))
        for queue in self._queues.values():
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        workers = list(self._workers.values())
        if workers:
            _done, still = await asyncio.wait(workers, timeout=5.0)
            for task in still:
                task.cancel()

    async def aclose(self) -> None:
        """Stop the workers and close our end of stdin (Node sees EOF and exits)."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()
        for task in self._workers.values():
            task.cancel()

    @property
    def closed(self) -> bool:
        return self._closed
