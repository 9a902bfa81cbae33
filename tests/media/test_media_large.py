"""A 50 MB document both ways with bounded memory (docs/media.md, "Memory").

Specification: a 50 MB document sent as multipart is decrypted by the contact byte for byte, and a
50 MB document a contact sends is served byte for byte; during each, neither the bridge (this
process: the API, the desk, the cipher) nor its Node runtime grows its peak RSS by more than
MEMORY_BOUND, because every step streams (multipart to disk, encryption file to file, Baileys'
upload from the file, download and decryption in 64 KiB chunks). Peaks come from the kernel
(VmHWM, reset through /proc/<pid>/clear_refs before each direction) and are printed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api.conftest import AUTH, Bridge, _bridge, make_settings
from tests.media.sim_media import decrypted, send_media, trust_file
from tests.messages.test_e2e_messages import event, fresh_phone, link, message
from tests.simulator.client import SimulatorClient

SIZE = 50 << 20
MEMORY_BOUND = 32 << 20
"""The promise in docs/media.md: peak RSS growth of each process for one 50 MB file."""


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


def reset_peak(pid: int) -> int:
    """Reset the kernel's peak RSS of `pid` to its current RSS; returns that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kb(pid, "VmRSS")


def node_children() -> list[int]:
    """The Node runtimes this process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"node-runtime" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
async def bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                 ) -> AsyncIterator[Bridge]:
    ca = await trust_file(simulator, tmp_path)
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             media_trust_ca=str(ca), media_fetch_timeout=300.0)
    async for b in _bridge(settings, aiohttp_client):
        yield b


def big_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        head = b"%PDF-1.4\n"
        out.write(head)
        digest.update(head)
        left = SIZE - len(head)
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


async def test_a_50_mb_document_goes_both_ways_byte_for_byte_within_the_memory_bound(
    bridge: Bridge, simulator: SimulatorClient, tmp_path: Path
) -> None:
    me = await link(bridge, simulator, "big")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    (node,) = node_children()
    source = tmp_path / "big.pdf"
    want = big_file(source)

    base = {pid: reset_peak(pid) for pid in (os.getpid(), node)}
    form = aiohttp.FormData()
    form.add_field("to", contact)
    form.add_field("kind", "document")
    with source.open("rb") as body:
        form.add_field("file", body, filename="big.pdf", content_type="application/pdf")
        response = await bridge.client.post("/api/v1/sessions/big/messages", data=form, headers=AUTH)
        assert response.status == 201, await response.text()
    sent_growth = {pid: status_kb(pid, "VmHWM") - rss for pid, rss in base.items()}
    got = await decrypted(simulator, contact, (await response.json())["id"])
    assert (got["sha256"], got["size"]) == (want, SIZE)

    message_id = await send_media(simulator, contact, me, "document", source, "application/pdf", file_name="back.pdf")
    await event(bridge, 0, message(message_id))
    base = {pid: reset_peak(pid) for pid in (os.getpid(), node)}
    digest = hashlib.sha256()
    size = 0
    async with bridge.client.get(f"/api/v1/sessions/big/messages/{message_id}/media", headers=AUTH) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    received_growth = {pid: status_kb(pid, "VmHWM") - rss for pid, rss in base.items()}
    assert (digest.hexdigest(), size) == (want, SIZE)

    mb = lambda n: f"{n / (1 << 20):.1f} MB"  # noqa: E731
    print(f"\n50 MB document, peak RSS growth: send bridge {mb(sent_growth[os.getpid()])}, node "
          f"{mb(sent_growth[node])}; receive bridge {mb(received_growth[os.getpid()])}, node "
          f"{mb(received_growth[node])}")
    for growth in (sent_growth, received_growth):
        assert growth[os.getpid()] < MEMORY_BOUND and growth[node] < MEMORY_BOUND, growth
