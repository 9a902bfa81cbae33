"""Snapshot routes: list, create, verify, restore (409 unless the session is stopped).

The store's snapshot logic is synchronous file work (hashing, fsync), so it runs in a worker
thread and never stalls other sessions' event handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from bridge.api import state
from bridge.api.models import CreateSnapshot, SnapshotList, SnapshotView, VerifyView
from bridge.api.routing import RequestError, json_response, operation, read_body
from bridge.api.views import snapshot_view, state_of, verify_view
from bridge.errors import ErrorCode, SessionStateError
from bridge.sessions.session import SessionInfo
from bridge.sessions.state import TERMINAL
from bridge.store.snapshots import SnapshotManifest

routes = web.RouteTableDef()
T = TypeVar("T")
BASE = "/api/v1/sessions/{id}/snapshots"
# States with no runtime touching the folder (stopped, or ended by WhatsApp): restore is safe.
RESTORABLE_STATES = TERMINAL


async def offload(func: Callable[..., T], *args: Any) -> T:
    """Run a synchronous store call (hashing, fsync) in a worker thread."""
    return await asyncio.to_thread(func, *args)


async def _existing(request: web.Request) -> tuple[str, SessionInfo]:
    session_id = request.match_info["id"]
    info = request.app[state.MANAGER].get(session_id)
    return session_id, info


async def _find(request: web.Request, session_id: str, snap: str) -> SnapshotManifest:
    for manifest in await offload(request.app[state.SNAPSHOTS].list, session_id):
        if manifest.id == snap:
            return manifest
    raise RequestError(
        f"session {session_id} has no snapshot {snap}; GET {BASE.format(id=session_id)} lists them",
        code=ErrorCode.SNAPSHOT_NOT_FOUND,
    )


@operation(routes, "GET", BASE, summary="List snapshots, newest first", tag="snapshots",
           responses={200: SnapshotList}, errors=(401, 404))
async def list_snapshots(request: web.Request) -> web.StreamResponse:
    session_id, _ = await _existing(request)
    manifests = await offload(request.app[state.SNAPSHOTS].list, session_id)
    return json_response(SnapshotList(snapshots=[snapshot_view(m) for m in manifests]))


@operation(routes, "POST", BASE, summary="Take a snapshot now", tag="snapshots", body=CreateSnapshot,
           responses={201: SnapshotView}, errors=(400, 401, 404, 409, 413, 422))
async def create_snapshot(request: web.Request) -> web.StreamResponse:
    session_id, _ = await _existing(request)
    spec = await read_body(request, CreateSnapshot)
    manifest = await offload(request.app[state.SNAPSHOTS].create, session_id, spec.reason)
    return json_response(snapshot_view(manifest), status=201)


@operation(routes, "POST", BASE + "/{snap}/verify", summary="Re-hash every file of a snapshot", tag="snapshots",
           responses={200: VerifyView}, errors=(401, 404))
async def verify_snapshot(request: web.Request) -> web.StreamResponse:
    session_id, _ = await _existing(request)
    manifest = await _find(request, session_id, request.match_info["snap"])
    report = await offload(request.app[state.SNAPSHOTS].verify, manifest)
    return json_response(verify_view(report))


@operation(routes, "POST", BASE + "/{snap}/restore", summary="Restore a snapshot (session must be stopped)",
           tag="snapshots", responses={200: SnapshotView}, errors=(401, 404, 409))
async def restore_snapshot(request: web.Request) -> web.StreamResponse:
    session_id, info = await _existing(request)
    snap = request.match_info["snap"]
    current = state_of(info)
    if current not in RESTORABLE_STATES:
        raise SessionStateError(
            f"session {session_id} is {current}; stop it (POST /api/v1/sessions/{session_id}/stop) before restoring"
        )
    await _find(request, session_id, snap)
    restored = await request.app[state.MANAGER].restore(session_id, snap)
    manifest = restored if restored is not None else await _find(request, session_id, snap)
    return json_response(snapshot_view(manifest))
