"""Liveness (`/healthz`, no auth) and readiness (`/readyz`).

`/healthz` answers as long as the event loop runs, with a per-state count of sessions so a probe
or a human sees at a glance how many tenants are open. `/readyz` turns 200 once the service has
started its sessions and 503 again when shutdown begins, so a load balancer drains first.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from bridge.api import state
from bridge.api.errors import error_response
from bridge.api.models import Health, Ready, StorageFaultView
from bridge.api.routing import json_response, operation
from bridge.api.views import state_of
from bridge.errors import ErrorCode

routes = web.RouteTableDef()


async def state_counts(app: web.Application) -> dict[str, int]:
    """Number of sessions per state, plus `total`."""
    infos = app[state.MANAGER].list()
    counts = Counter(state_of(i) for i in infos)
    return {"total": sum(counts.values()), **dict(sorted(counts.items()))}


@operation(routes, "GET", "/healthz", summary="Liveness and per-state session counts", tag="health",
           responses={200: Health}, errors=(), public=True)
async def healthz(request: web.Request) -> web.StreamResponse:
    fault = request.app[state.MANAGER].fault
    view = StorageFaultView(code=fault.code, message=str(fault)) if fault is not None else None
    log_state = "ok" if request.app[state.EVENT_LOG].healthy else "failing"
    return json_response(Health(status="degraded" if fault else "ok", sessions=await state_counts(request.app),
                                event_log=log_state, storage_fault=view))


@operation(routes, "GET", "/readyz", summary="Ready to serve (sessions started, not shutting down)", tag="health",
           responses={200: Ready, 503: None}, errors=(401,))
async def readyz(request: web.Request) -> web.StreamResponse:
    if request.app[state.READY].is_set():
        return json_response(Ready(ready=True))
    fault = request.app[state.MANAGER].fault
    if fault is not None:
        return error_response(503, fault.code, f"the auth root refuses writes: {fault}")
    return error_response(503, ErrorCode.NOT_READY, "the bridge is starting or shutting down; retry shortly")
