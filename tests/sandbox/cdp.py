"""A small Chrome DevTools Protocol client: headless Chromium driven over its debugging port.

Why not Playwright: it downloads its own browser; this uses Debian's /usr/bin/chromium and
aiohttp's WebSocket client, nothing else. One `Browser` per test, one page (a flattened target
session) per `new_page`; everything is reaped on exit (own process group, own profile folder).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class CdpError(Exception):
    """Chromium answered a command with an error, or a page expression threw."""


class Page:
    """One tab: evaluate JavaScript, wait for a condition, take screenshots."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.session_id)

    async def navigate(self, url: str) -> None:
        await self.send("Page.enable")
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'")

    async def eval(self, expression: str) -> Any:
        """The value of `expression` (awaited if it is a promise)."""
        answer = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    async def wait_for(self, expression: str, within: float = 120.0) -> Any:
        """Poll `expression` until it is truthy; TimeoutError naming it (tests never assert durations)."""
        try:
            async with asyncio.timeout(within):
                while True:
                    value = await self.eval(expression)
                    if value:
                        return value
                    await asyncio.sleep(0.25)
        except TimeoutError:
            status = await self.eval("document.getElementById('message')?.textContent")
            raise TimeoutError(f"page never satisfied {expression!r} within {within}s; status: {status!r}") from None

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                               "deviceScaleFactor": 1, "mobile": mobile})

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        answer = await self.send("Page.captureScreenshot", params)
        await asyncio.to_thread(_write, path, base64.b64decode(answer["data"]))
        return path


class Browser:
    """The browser-level WebSocket; commands are matched to answers by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._waiting.values():
            future.set_exception(CdpError("the browser closed its debugging socket"))

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None) -> dict[
            str, Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        body: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            body["sessionId"] = session_id
        await self.ws.send_str(json.dumps(body))
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self, width: int = 1100, height: int = 900) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.viewport(width, height)
        return page

    async def close(self) -> None:
        with contextlib.suppress(CdpError, TimeoutError, ConnectionError):
            await self.send("Browser.close")
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[Browser]:
    """Start headless Chromium with its own profile; yield a connected `Browser`; reap it."""
    assert CHROMIUM is not None, "chromium is not installed"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--hide-scrollbars",
        "--remote-debugging-port=0", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = await proc.stderr.readline()
                if not line:
                    raise CdpError("chromium exited before it opened its debugging port")
                found = LISTENING.search(line)
                url = found.group(1).decode() if found else None
        drain = asyncio.create_task(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, max_msg_size=64 << 20)
            b = Browser(ws)
            try:
                yield b
            finally:
                await b.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
