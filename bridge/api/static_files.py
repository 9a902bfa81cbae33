"""The dashboard: a static HTML+JS page at `/` and `/dashboard`, assets under `/static/`.

The page holds no data and no secret; it asks the operator for an API key, keeps it in
sessionStorage (gone when the tab closes) and calls the same JSON API as any client.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard")


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


routes.static("/static", STATIC_DIR)
