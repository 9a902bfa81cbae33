"""Running `python -m bridge` as a real subprocess in tests (start, wait for HTTP, clean up)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def bridge_process(
    cwd: Path, env: dict[str, str], *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start `python -m bridge ...`; the test must end it; it is killed if it is still alive."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args,
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            await proc.wait()


async def wait_http(url: str, headers: dict[str, str] | None = None) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url, headers=headers) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never answered 200")
