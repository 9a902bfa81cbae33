"""`/metrics`: the default prometheus-client registry (every metric in `bridge.metrics`).

The sessions-by-state gauge is refreshed from the manager on each scrape, so it is right even for
states no code path has counted yet (and falls to 0 for states nobody is in); so are the webhook
backlog gauges (read from the outbox).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bridge.api import state
from bridge.api.health import state_counts
from bridge.api.routing import operation
from bridge.metrics import SESSIONS_BY_STATE
from bridge.sessions.state import SessionState

routes = web.RouteTableDef()

@operation(routes, "GET", "/metrics", summary="Prometheus metrics", tag="health", responses={200: None},
           media={"200": {"text/plain": {"schema": {"type": "string"}}}}, errors=(401,))
async def metrics(request: web.Request) -> web.StreamResponse:
    counts = await state_counts(request.app)
    for name in SessionState:
        SESSIONS_BY_STATE.labels(state=name.value).set(counts.get(name.value, 0))
    await request.app[state.WEBHOOKS].refresh_metrics()
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
