"""The simulator process itself: address line, clean exit on stdin EOF and on POST /stop."""

from __future__ import annotations

import asyncio
import json

from tests.simulator.client import MAIN, REPO_ROOT, node_binary


async def spawn() -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(MAIN), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc, json.loads(line)


async def test_prints_addresses_and_exits_when_stdin_closes() -> None:
    proc, info = await spawn()
    assert info["ws_url"].startswith("ws://127.0.0.1:") and info["ws_url"].endswith("/ws/chat")
    assert info["control_url"].startswith("http://127.0.0.1:")
    assert len(bytes.fromhex(info["root_pub"])) == 32
    assert proc.stdin is not None
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_post_stop_exits() -> None:
    import aiohttp

    proc, info = await spawn()
    async with aiohttp.ClientSession() as http, http.post(info["control_url"] + "/stop") as resp:
        assert resp.status == 200
    assert await asyncio.wait_for(proc.wait(), 30) == 0
