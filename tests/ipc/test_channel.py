"""Channel framing over real stream pairs (a Unix socketpair): correlation, limits, order, back-pressure."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from bridge.errors import NodeRuntimeError, ProtocolError
from bridge.ipc import protocol as p
from bridge.ipc.channel import Channel, ChannelClosed, CommandFailed


class Peer:
    """The other end, playing the Node runtime with raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, obj: Any) -> None:
        self.writer.write((obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n")
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), 30)
        assert line, "channel closed"
        return dict(json.loads(line))


class Rig:
    def __init__(self) -> None:
        self.requests: list[p.Req] = []
        self.events: list[tuple[p.Evt, msgspec.Struct]] = []
        self.violations: list[p.MessageRejected] = []
        self.handler_delay = 0.0
        self.max_backlog = 0
        self.handled = 0
        self.channel: Channel
        self.peer: Peer

    async def on_request(self, req: p.Req, args: msgspec.Struct) -> Any:
        self.requests.append(req)
        self.max_backlog = max(self.max_backlog, self.channel.lines - self.handled)
        if self.handler_delay:
            await asyncio.sleep(self.handler_delay)
        self.handled += 1
        if req.s == "nobody":
            raise ProtocolError("session nobody is not hosted")
        if isinstance(args, p.AuthGetArgs):
            return {i: None for i in args.ids}
        return None

    def on_event(self, evt: p.Evt, data: msgspec.Struct) -> None:
        self.events.append((evt, data))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    a, b = socket.socketpair()
    ours_r, ours_w = await asyncio.open_unix_connection(sock=a)
    peer_r, peer_w = await asyncio.open_unix_connection(sock=b, limit=1 << 24)
    r = Rig()
    r.channel = Channel(ours_r, ours_w, max_line=4096, on_request=r.on_request, on_event=r.on_event,
                        on_violation=r.violations.append, sessions={"a", "b"}, name="test", queue_size=8)
    r.peer = Peer(peer_r, peer_w)
    task = asyncio.create_task(r.channel.run())
    yield r
    peer_w.close()
    await asyncio.wait_for(task, 30)
    ours_w.close()


async def test_call_is_answered_by_id(rig: Rig) -> None:
    call = asyncio.create_task(rig.channel.call("a", "ping", {}, 30))
    cmd = await rig.peer.recv()
    assert cmd == {"t": "cmd", "id": cmd["id"], "s": "a", "cmd": "ping", "args": {}}
    await rig.peer.send({"t": "res", "id": cmd["id"], "s": "a", "ok": True, "result": {"pid": 1, "sessions": []}})
    assert await call == {"pid": 1, "sessions": []}


async def test_error_reply_raises_with_the_runtime_code(rig: Rig) -> None:
    call = asyncio.create_task(rig.channel.call("a", "send", {"to": "x@s.whatsapp.net", "text": "hi"}, 30))
    cmd = await rig.peer.recv()
    await rig.peer.send({"t": "res", "id": cmd["id"], "s": "a", "ok": False,
                         "error": {"code": "session_state", "message": "no socket"}})
    with pytest.raises(CommandFailed) as info:
        await call
    assert info.value.code == "session_state"


async def test_silence_times_out_and_eof_fails_pending_calls(rig: Rig) -> None:
    with pytest.raises(NodeRuntimeError) as info:
        await rig.channel.call("a", "ping", {}, 0.2)
    assert info.value.code == "runtime_timeout"
    call = asyncio.create_task(rig.channel.call("a", "ping", {}, 30))
    await rig.peer.recv()
    await rig.peer.recv()
    rig.peer.writer.close()
    with pytest.raises(ChannelClosed):
        await call


async def test_oversize_line_is_discarded_and_the_next_line_still_works(rig: Rig) -> None:
    rig.peer.writer.write(b'{"t":"evt","s":"a","name":"qr","data":{"qr":"' + b"x" * (10 << 20) + b"\n")
    await rig.peer.writer.drain()
    await rig.peer.send({"t": "evt", "s": "a", "name": "qr", "data": {"qr": "fine"}})
    await rig.peer.send({"t": "req", "id": 1, "s": "a", "op": "auth.get", "args": {"type": "pre-key", "ids": ["1"]}})
    assert await rig.peer.recv() == {"t": "res", "id": 1, "s": "a", "ok": True, "result": {"1": None}}
    assert [v.kind for v in rig.violations] == ["too_long"]
    assert [d.qr for _, d in rig.events if isinstance(d, p.QrData)] == ["fine"]


async def test_violations_are_answered_when_they_had_an_id(rig: Rig) -> None:
    await rig.peer.send(b"\x00\xffnot json")
    await rig.peer.send({"t": "req", "id": 2, "s": "a", "op": "auth.get", "args": {"type": 1}, "x": 1})
    assert (await rig.peer.recv())["error"]["code"] == "protocol_error"
    await rig.peer.send({"t": "req", "id": 3, "s": "a", "op": "fs.rm", "args": {}})
    assert (await rig.peer.recv())["error"]["code"] == "protocol_error"
    await rig.peer.send({"t": "req", "id": 4, "s": "nobody", "op": "auth.load", "args": {}})
    assert (await rig.peer.recv())["error"]["code"] == "protocol_error"
    await rig.peer.send({"t": "res", "id": 999, "s": "a", "ok": True})
    await rig.peer.send({"t": "evt", "s": "a", "name": "bogus", "data": {}})
    await rig.peer.send({"t": "req", "id": 5, "s": "a", "op": "auth.load", "args": {}})
    assert (await rig.peer.recv()) == {"t": "res", "id": 5, "s": "a", "ok": True}
    assert [v.kind for v in rig.violations] == ["bad_json", "bad_shape", "unknown_op", "refused", "unknown_id",
                                                "unknown_event"]
    assert rig.violations[3].session == "nobody"
    assert rig.channel.violations == 6


async def test_a_sessions_requests_are_served_in_order_with_bounded_backlog(rig: Rig) -> None:
    rig.handler_delay = 0.001
    n = 500
    for i in range(n):
        rig.peer.writer.write(json.dumps({"t": "req", "id": i, "s": "a", "op": "auth.set",
                                          "args": {"data": {"pre-key": {str(i): "{}"}}}}).encode() + b"\n")
    await rig.peer.writer.drain()
    answers = [await rig.peer.recv() for _ in range(n)]
    assert [a["id"] for a in answers] == list(range(n))
    assert [r.id for r in rig.requests] == list(range(n))
    # Lines read but not yet served never exceed the queue (8) plus the one being enqueued.
    assert rig.max_backlog <= 8 + 2, rig.max_backlog


async def test_call_times_out_even_when_the_child_stops_reading_stdin() -> None:
    a, b = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=a)

    async def no_requests(req: p.Req, args: msgspec.Struct) -> Any:
        return None

    channel = Channel(reader, writer, on_request=no_requests, on_event=lambda e, d: None)
    # 8 MiB in one command while the peer (b) never reads: drain() cannot finish.
    call = channel.call("a", "send", {"to": "x@s.whatsapp.net", "text": "y" * (8 << 20)}, 0.5)
    with pytest.raises(NodeRuntimeError) as info:
        await asyncio.wait_for(call, 60)
    assert info.value.code == "runtime_timeout"
    writer.transport.abort()
    b.close()
