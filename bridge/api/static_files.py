"""The dashboard: a static HTML+JS page at `/` and `/dashboard`, assets under `/static/`.

The page holds no data and no secret; it asks the operator for an API key, keeps it in
sessionStorage (gone when the tab closes) and calls the same JSON API as any client.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
routes = web.RouteTableDef()
# The pages drive start/stop buttons with the operator's key: never framed by another site, and
# only this origin's scripts run (the docs page has one inline script).
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


@routes.get("/")
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard")


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


routes.static("/static", STATIC_DIR)
