"""The media folder on a real, small tmpfs that fills up (docs/media.md, disk trouble).

Specification: with `<state>/media` on a 6 MiB tmpfs, a file whose plaintext copy fits but whose
encrypted spool copy does not, and a file that does not even fit as the plaintext copy, are both
refused with 507 `storage_full` naming the folder; the spool is empty afterwards and the space is
free again; a download that does not fit into the cache is 507 too and leaves no partial file; the
session stays open, and the next small send and download work. Nothing sent before is lost.
Needs root for `mount`; skipped with the command's own error where the sandbox refuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.media.spool import media_dir
from tests.api.conftest import AUTH, Bridge, _bridge, make_settings
from tests.faults.mounts import free_bytes, run, unmount
from tests.media import files
from tests.media.sim_media import decrypted, send_media, trust_file
from tests.messages.test_e2e_messages import event, fresh_phone, link, message
from tests.simulator.client import SimulatorClient

SIZE_MB = 6


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size_mb: int) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mountpoint))
    if done.returncode != 0:
        pytest.skip(f"mount tmpfs refused here (exit {done.returncode}): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


@pytest.fixture
async def bridge(tmp_path: Path, aiohttp_client: Callable[..., Any], simulator: SimulatorClient
                 ) -> AsyncIterator[Bridge]:
    ca = await trust_file(simulator, tmp_path)
    settings = make_settings(tmp_path, wa_url=simulator.ws_url, wa_trust_root=simulator.root_pub,
                             state_dir=tmp_path / "state", media_trust_ca=str(ca))
    with small_tmpfs(media_dir(settings), SIZE_MB):
        async for b in _bridge(settings, aiohttp_client):
            yield b


def leftovers(b: Bridge) -> list[str]:
    return sorted(str(p.relative_to(media_dir(b.settings))) for p in media_dir(b.settings).rglob("*") if p.is_file())


async def post_document(b: Bridge, to: str, data: bytes, name: str) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("to", to)
    form.add_field("kind", "document")
    form.add_field("file", data, filename=name, content_type="application/pdf")
    response: aiohttp.ClientResponse = await b.client.post("/api/v1/sessions/full/messages", data=form, headers=AUTH)
    return response


async def test_a_full_media_disk_is_a_clear_507_loses_nothing_and_leaves_the_spool_clean(
    bridge: Bridge, simulator: SimulatorClient
) -> None:
    me = await link(bridge, simulator, "full")
    contact = fresh_phone()
    await simulator.create_contact(contact)
    folder = media_dir(bridge.settings)
    first = await post_document(bridge, contact, files.pdf(20_000), "before.pdf")
    assert first.status == 201
    empty = free_bytes(folder)

    for size in (4 << 20, 8 << 20):  # the plaintext fits but not its encrypted copy; nothing fits
        response = await post_document(bridge, contact, files.pdf(size), "big.pdf")
        answer = await response.json()
        assert response.status == 507, answer
        assert answer["error"]["code"] == "storage_full" and "media" in answer["error"]["message"], answer
        assert leftovers(bridge) == [], "the spool is cleaned after the refusal"
        assert free_bytes(folder) == empty

    assert (await bridge.manager.wait_for_state("full", {"open"}, 5)).state == "open"
    small = files.pdf(30_000)
    after = await post_document(bridge, contact, small, "after.pdf")
    assert after.status == 201, await after.text()
    got = await decrypted(simulator, contact, (await after.json())["id"])
    assert got["sha256"] == hashlib.sha256(small).hexdigest()
    before = await decrypted(simulator, contact, (await first.json())["id"])
    assert before["size"] > 0, "what was sent before the disk filled is untouched"

    large = os.urandom(7 << 20)
    too_big = await send_media(simulator, contact, me, "document", b"%PDF-1.4\n" + large, "application/pdf",
                               file_name="in.pdf")
    await event(bridge, 0, message(too_big))
    response = await bridge.client.get(f"/api/v1/sessions/full/messages/{too_big}/media", headers=AUTH)
    answer = await response.json()
    assert response.status == 507 and answer["error"]["code"] == "storage_full", answer
    assert leftovers(bridge) == [], "no partial download stays in the cache"

    fits = files.pdf(25_000)
    ok = await send_media(simulator, contact, me, "document", fits, "application/pdf", file_name="ok.pdf")
    await event(bridge, 0, message(ok))
    response = await bridge.client.get(f"/api/v1/sessions/full/messages/{ok}/media", headers=AUTH)
    assert response.status == 200 and hashlib.sha256(await response.read()).hexdigest() == \
        hashlib.sha256(fits).hexdigest()
