"""A webhook receiver for the cluster tests: a real HTTP endpoint that checks each request's
Standard Webhooks signature and records every attempt (`webhook-id`, body) it answered 2xx."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import Counter
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


class Receiver:
    """See the module docstring. `url` is set once it listens (`start`)."""

    def __init__(self, *, hang_first: bool = False) -> None:
        self.hang_first = hang_first
        self.hanging = asyncio.Event()
        self._released = asyncio.Event()
        self.attempted: list[str] = []
        self.verifier = Verifier(SECRET)
        self.bodies: list[dict[str, Any]] = []
        self.ids: Counter[str] = Counter()
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.verifier.verify(body, dict(request.headers))  # raises on a bad signature: the bridge sees a 500
        self.attempted.append(request.headers["webhook-id"])
        if self.hang_first and len(self.attempted) == 1:
            self.hanging.set()
            await self._released.wait()  # no answer until `close`: the sender must give up or die
            return web.Response(status=503)
        self.ids[request.headers["webhook-id"]] += 1
        self.bodies.append(json.loads(body))
        self._arrived.set()
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def message_ids(self) -> Counter[str]:
        """How many times each WhatsApp message id arrived in a `message` event."""
        return Counter(b["data"]["id"] for b in self.bodies if b["kind"] == "message")

    async def wait_messages(self, ids: set[str], within: float) -> bool:
        """Wait until a `message` event of each of `ids` arrived; False if `within` s passed first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not set(self.message_ids()) >= ids:
                    self._arrived.clear()
                    await self._arrived.wait()
        return set(self.message_ids()) >= ids

    def spec(self) -> dict[str, Any]:
        """The body of `POST /api/v1/webhooks` for this receiver (message events of every session)."""
        return {"url": self.url, "secret": SECRET, "events": ["message"]}
