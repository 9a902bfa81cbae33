"""`/metrics`: the default prometheus-client registry (every metric in `bridge.metrics`).

The sessions-by-state gauge is refreshed from the manager on each scrape, so it is right even for
states no code path has counted yet (and falls to 0 for states nobody is in).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bridge.api.health import state_counts
from bridge.api.routing import operation
from bridge.metrics import SESSIONS_BY_STATE

routes = web.RouteTableDef()

KNOWN_STATES = (
    "stopped", "starting", "qr", "pairing", "connecting", "open", "reconnecting", "logged_out", "banned", "failed",
)


@operation(routes, "GET", "/metrics", summary="Prometheus metrics", tag="health", responses={200: None},
           media={"200": {"text/plain": {"schema": {"type": "string"}}}}, errors=(401,))
async def metrics(request: web.Request) -> web.StreamResponse:
    counts = await state_counts(request.app)
    for name in {*KNOWN_STATES, *counts} - {"total"}:
        SESSIONS_BY_STATE.labels(state=name).set(counts.get(name, 0))
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
