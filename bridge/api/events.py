"""Server-Sent Events: `/api/v1/events` (all sessions) and `/api/v1/sessions/{id}/events`.

Each event becomes one SSE message with `id:` = its sequence number in the event log, sent only
once the event is on disk. A reconnecting client (browsers do it by themselves) sends
`Last-Event-ID` and gets what it missed from the log, across bridge restarts too; `?after=0`
replays everything the log still holds. When retention already pruned what the client asks for,
a `gap` event says so first; an id newer than anything in the log (the log was replaced) gets a
`reset` event. A comment line every `sse_heartbeat` seconds keeps proxies from closing an idle
stream and lets the server notice a client that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from pydantic import Field

from bridge.api import state
from bridge.api.models import Strict
from bridge.api.routing import RequestError, operation, read_query
from bridge.errors import ErrorCode
from bridge.eventlog.log import EventLog, EventLogUnavailable
from bridge.eventlog.stream import follow, oldest
from bridge.events import Event, EventBus, canonical_kind, event_json
from bridge.tasks import cancel_and_wait

log_ = logging.getLogger(__name__)
routes = web.RouteTableDef()

SSE_MEDIA = {"200": {"text/event-stream": {"schema": {"type": "string"}}}}


class EventsQuery(Strict):
    after: int | None = Field(None, ge=0, description="Replay logged events after this seq (like Last-Event-ID)")


def format_event(event: Event) -> bytes:
    """One SSE message; `data` is the whole event as JSON (see EventView in the schema)."""
    head = f"id: {event.seq}\nevent: {canonical_kind(event.kind)}\ndata: ".encode()
    return head + event_json(event) + b"\n\n"


GAP = b'event: gap\ndata: {"message":"events before this point were pruned by retention or lost"}\n\n'
RESET = (b'event: reset\ndata: {"message":"Last-Event-ID is newer than the event log (it was replaced); '
         b'reconnect with ?after=0"}\n\n')


def resume_point(request: web.Request) -> int | None:
    """`Last-Event-ID` header wins over `?after=`; neither means live events only."""
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        try:
            value = int(header.strip())
        except ValueError:
            raise RequestError(
                "Last-Event-ID must be the integer id of an event", code=ErrorCode.VALIDATION_ERROR
            ) from None
        if value < 0:
            raise RequestError("Last-Event-ID must not be negative", code=ErrorCode.VALIDATION_ERROR)
        return value
    return read_query(request, EventsQuery).after


async def _pump(
    bus: EventBus, log: EventLog, session: str | None, after: int | None, queue: asyncio.Queue[Any]
) -> None:
    """Feed the stream; if the log cannot be read, end the stream (the client reconnects with its
    Last-Event-ID and gets the rest once the log can be read again) instead of going silent."""
    try:
        async for event in follow(bus, log, session, after):
            await queue.put(event)
    except EventLogUnavailable as exc:
        log_.warning("SSE stream ended: %s", exc.message)
        await queue.put(None)


async def _preface(log: EventLog, bus: EventBus, after: int) -> bytes:
    """A `gap` or `reset` notice for a client resuming from `after`, or nothing."""
    if after > bus.committed_seq:
        return RESET
    try:
        first = await oldest(log)  # the shared log's in cluster mode
    except EventLogUnavailable:
        return b""
    return GAP if first > after + 1 else b""


async def stream_events(request: web.Request, session: str | None) -> web.StreamResponse:
    """Serve one SSE stream until the client leaves or the server shuts down."""
    app = request.app
    after = resume_point(request)
    bus = app[state.BUS]
    log = app[state.EVENT_LOG]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
    app[state.STREAMS].add(queue)
    pump = asyncio.create_task(_pump(bus, log, session, after, queue))
    heartbeat = app[state.SETTINGS].sse_heartbeat
    try:
        await response.write(b"retry: 2000\n\n")
        if after is not None:
            notice = await _preface(log, bus, after)
            if notice:
                await response.write(notice)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:
                break
            await response.write(format_event(item))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        app[state.STREAMS].discard(queue)
        await cancel_and_wait([pump])
    return response


@operation(routes, "GET", "/api/v1/events", summary="Live events of all sessions (SSE)", tag="events",
           query=EventsQuery, responses={200: None}, media=SSE_MEDIA, errors=(401, 422), streaming=True)
async def all_events(request: web.Request) -> web.StreamResponse:
    return await stream_events(request, None)


@operation(routes, "GET", "/api/v1/sessions/{id}/events", summary="Live events of one session (SSE)",
           tag="events", query=EventsQuery, responses={200: None}, media=SSE_MEDIA, errors=(401, 404, 422),
           streaming=True)
async def session_events(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["id"]
    request.app[state.MANAGER].get(session_id)  # unknown session: SessionNotFound, 404 before streaming
    return await stream_events(request, session_id)


async def close_streams(app: web.Application) -> None:
    """on_shutdown hook: end every open stream so shutdown does not wait for clients."""
    streams: set[asyncio.Queue[Any]] = app[state.STREAMS]
    for queue in list(streams):
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
