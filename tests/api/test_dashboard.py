"""The dashboard as a browser renders it: headless Chromium loads /dashboard (key passed in the URL
fragment, which the page moves to sessionStorage), lists the session with its state, and shows the
login QR; the QR in the screenshot decodes to the session's current ref.

Skipped when Chromium is not installed (.ci/run installs Debian's `chromium`).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bridge.api.routing import OPERATIONS
from tests.api.conftest import API_KEY, AUTH, Bridge
from tests.simulator.client import SimulatorClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
TIMEOUT = 180.0


async def chromium(profile: Path, *args: str) -> bytes:
    """Run headless Chromium once; it gets its own profile and is always reaped."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--hide-scrollbars",
        "--virtual-time-budget=8000", "--window-size=1100,900", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out


async def test_dashboard_lists_sessions_and_shows_the_qr(
    live_bridge: Bridge, simulator: SimulatorClient, tmp_path: Path
) -> None:
    client = live_bridge.client
    response = await client.post("/api/v1/sessions", json={"id": "dash-tenant"}, headers=AUTH)
    assert response.status == 201
    await live_bridge.manager.wait_for_state("dash-tenant", {"qr"}, TIMEOUT)
    url = str(client.make_url("/dashboard")) + f"#key={API_KEY}"

    dom = (await chromium(tmp_path / "profile-dom", "--dump-dom", url)).decode()
    assert "dash-tenant" in dom and 'class="state state-qr"' in dom
    assert "Show QR" in dom and "Stop" in dom

    shot = tmp_path / "dashboard.png"
    await chromium(tmp_path / "profile-shot", f"--screenshot={shot}", url)
    image = Image.open(shot).convert("L")
    found = zxingcpp.read_barcodes(image)
    emitted = {e.data["qr"] for e in live_bridge.bus.since(0, "dash-tenant") if e.kind == "qr"}
    assert len(found) == 1 and found[0].text in emitted, "the dashboard shows a QR the session emitted"


async def test_dashboard_without_a_key_asks_for_one(bridge: Bridge, tmp_path: Path) -> None:
    url = str(bridge.client.make_url("/dashboard"))
    dom = (await chromium(tmp_path / "profile", "--dump-dom", url)).decode()
    assert '<form id="login">' in dom, "the key form is shown"
    assert 'id="panel" hidden' in dom, "no session data without a key"
    assert "API key" in dom


async def test_docs_page_renders_every_operation_from_the_document(bridge: Bridge, tmp_path: Path) -> None:
    url = str(bridge.client.make_url("/api/v1/docs")) + f"#key={API_KEY}"
    dom = (await chromium(tmp_path / "profile", "--dump-dom", url)).decode()
    assert dom.count('class="op"') == len(OPERATIONS)
    assert "/api/v1/sessions/{id}/qr" in dom
    assert all(op.summary in dom for op in OPERATIONS)
