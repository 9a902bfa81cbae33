"""A minimal 'bridge' process for the orphan test: supervises the real runtime, prints its pid, waits.

Run as `python -m tests.runtime.host_bridge <auth_root>`; the test SIGKILLs this process and checks
that the Node child exits by itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from bridge.config import Settings
from bridge.ipc import protocol as p
from bridge.runtime.auth_handler import AuthRequestHandler
from bridge.runtime.process import NodeProcess
from bridge.store.auth_store import AsyncAuthStore, AuthStore


async def main(auth_root: Path) -> None:
    settings = Settings(_env_file=None, auth_root=auth_root)
    handler = AuthRequestHandler()
    handler.host("orphan", AsyncAuthStore(AuthStore(auth_root / "orphan", session_id="orphan",
                                                    bridge_dir=settings.bridge_dir)))

    def on_event(evt: p.Evt, data: msgspec.Struct) -> None:
        return None

    async def on_request(req: p.Req, args: msgspec.Struct) -> Any:
        return await handler(req, args)

    proc = NodeProcess(settings, "orphan", on_request=on_request, on_event=on_event, sessions=handler)
    await proc.start()
    await proc.call("orphan", "start", {"wa_url": "ws://127.0.0.1:1/ws/chat"})
    print(proc.pid, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
