"""Shared steps of the end-to-end session tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bridge.events import Event, EventBus
from bridge.sessions.manager import SessionManager
from tests.sessions.conftest import fresh_phone
from tests.simulator.client import SimulatorClient

TIMEOUT = 120.0


async def link(manager: SessionManager, simulator: SimulatorClient, session_id: str) -> str:
    """Create `session_id`, link it with a pairing code, wait for open; returns its phone."""
    phone = fresh_phone()
    await simulator.create_account(phone)
    await manager.create(session_id, "pairing_code", phone)
    code = await manager.request_pairing_code(session_id, phone)
    await simulator.enter_pairing_code(phone, code)
    await manager.wait_for_state(session_id, {"open"}, TIMEOUT)
    return phone


def files_of(folder: Path) -> dict[str, bytes]:
    """Every regular file of an auth folder with its bytes (the store's in-flight `.bridge-tmp.*`
    files are not part of the folder's content)."""
    found: dict[str, bytes] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        try:
            found[path.name] = path.read_bytes()
        except FileNotFoundError:  # replaced while listing
            continue
    return found


async def wait_event(
    bus: EventBus, after: int, match: Callable[[Event], bool], timeout: float = TIMEOUT  # noqa: ASYNC109
) -> Event:
    """The first event after `after` for which `match` is true (buffered or live)."""
    async with asyncio.timeout(timeout):
        async for event in bus.subscribe(after=after):
            if match(event):
                return event
    raise AssertionError("unreachable")  # pragma: no cover


def kept(before: dict[str, bytes], folder: Path, trash: Path) -> set[str]:
    """Names of `before` that are neither in `folder` nor in the store's trash (should be empty).

    Baileys deletes consumed one-time pre-keys (`keys.set` with null); the store moves those to
    `.bridge/trash/<session>/<time_ns>-<name>`, so a file missing from the folder must be there.
    """
    return set(before) - set(files_of(folder)) - trashed(trash)


def trashed(trash: Path) -> set[str]:
    """Original names of the key files in a session's trash folder."""
    return {p.name.split("-", 1)[1] for p in trash.iterdir()} if trash.is_dir() else set()


async def settled(folder: Path, quiet: float = 3.0, within: float = TIMEOUT) -> None:
    """Wait until nothing in `folder` changed for `quiet` seconds (login traffic is over)."""
    async with asyncio.timeout(within):
        last = files_of(folder)
        still_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - still_since < quiet:
            await asyncio.sleep(0.25)
            now = files_of(folder)
            if now != last:
                last, still_since = now, asyncio.get_running_loop().time()
