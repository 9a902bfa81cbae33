"""API-key middleware: `X-API-Key` compared in constant time against every configured key.

Several keys are allowed so an operator can rotate without downtime (add the new key, move the
clients, drop the old key). Every key is compared, even after a match, so timing does not tell
which key (or how many) exist. With no key configured the API is open; `bridge.app` refuses to
bind anything but loopback in that case.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.api.errors import error_response
from bridge.api.routing import Handler

HEADER = "X-API-Key"
# Paths that never need a key: liveness, and the static dashboard shell (it asks for the key).
PUBLIC_PATHS = frozenset({"/healthz", "/", "/dashboard", "/api/v1/docs"})
PUBLIC_PREFIXES = ("/static/",)


def key_matches(presented: str, keys: list[str]) -> bool:
    """True when `presented` equals one of `keys`; the time taken does not depend on which."""
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def make_auth_middleware(keys: list[str], *, metrics_public: bool) -> Middleware:
    """Build the middleware for this set of keys (read once at startup)."""
    public = set(PUBLIC_PATHS)
    if metrics_public:
        public.add("/metrics")

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not keys or request.path in public or request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        presented = request.headers.get(HEADER)
        if presented is None or not key_matches(presented, keys):
            response = error_response(
                401, "unauthorized", f"missing or wrong {HEADER} header; use one of BRIDGE_API_KEYS"
            )
            response.headers["WWW-Authenticate"] = HEADER
            return response
        return await handler(request)

    return auth_middleware
