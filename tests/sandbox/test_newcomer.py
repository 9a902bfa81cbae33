"""Sandbox mode as a newcomer meets it: `python -m bridge --sandbox` on a fresh folder, the
dashboard in headless Chromium, a session linked by the virtual phone, a message answered by the
echo contact, the snapshot list; plus the labels and refusals that keep sandbox and production
apart. Screenshots go to tests/sandbox/artifacts/ (gitignored): look at them.

One sandbox bridge (and so one simulator) for the module.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bridge.sandbox.mode import ECHO
from bridge.sandbox.roots import AUTH_MARKER, MARKER_TEXT, STATE_MARKER
from tests.sandbox.bridge_process import BridgeProcess, run_bridge
from tests.sandbox.cdp import CHROMIUM, browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TEXT = "Hello from the newcomer test"


@pytest.fixture(scope="module")
def sandbox_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """The README's command in an empty folder: `python -m bridge --sandbox`."""
    folder = tmp_path_factory.mktemp("fresh-checkout")
    bridge = BridgeProcess(folder, "--sandbox")
    try:
        bridge.wait_ready()
        yield bridge
    finally:
        survivors = bridge.stop()
    assert survivors == [], f"processes outlived the sandbox bridge: {survivors}"
    assert bridge.proc.returncode == 0, bridge.log_tail()


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
async def test_a_newcomer_links_by_qr_sends_and_sees_the_echo_reply(
    sandbox_bridge: BridgeProcess, tmp_path: Path
) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    async with browser(tmp_path / "profile") as chromium:
        page = await chromium.new_page(1100, 900)
        await page.navigate(sandbox_bridge.url + "/dashboard")

        await page.wait_for("!document.getElementById('sandbox-banner').hidden")
        assert "SANDBOX" in await page.eval("document.getElementById('sandbox-banner').textContent")
        assert await page.eval("!document.getElementById('phone').hidden"), "the virtual phone is shown"

        await page.eval("document.getElementById('new-id').value = 'newcomer'; "
                        "document.getElementById('create').requestSubmit()")
        await page.wait_for("[...document.getElementById('scan-session').options].some(o => o.value === 'newcomer')")
        await page.wait_for("!document.getElementById('qr-box').hidden && "
                            "document.getElementById('qr').naturalWidth > 0")
        await page.screenshot(ARTIFACTS / "1-qr-waiting.png")

        await page.eval("document.getElementById('scan-session').value = 'newcomer'; "
                        "document.getElementById('phone-scan').requestSubmit()")
        await page.wait_for("document.querySelector('#sessions .state-open') !== null")
        assert await page.eval("document.getElementById('detail-state').textContent") == "open"

        await page.wait_for(f"document.getElementById('send-to').value === '{ECHO.phone}'")
        await page.eval(f"document.getElementById('send-text').value = {TEXT!r}; "
                        "document.getElementById('send').requestSubmit()")
        await page.wait_for(f"document.getElementById('messages').textContent.includes('echo: {TEXT}')")
        rows = await page.eval("[...document.querySelectorAll('#messages tr')].map(r => r.textContent)")
        assert any("received" in r and f"echo: {TEXT}" in r for r in rows), rows
        assert any(r.startswith(tuple("0123456789")) and "sent" in r and r.endswith(("sent", "delivered", "read"))
                   and TEXT in r and "echo" not in r for r in rows), f"our message shows its status: {rows}"
        await page.wait_for(f"document.getElementById('chat-log').textContent.includes('echo: {TEXT}')")

        await page.eval("document.getElementById('snap-refresh').click()")
        await page.wait_for("document.querySelectorAll('#snapshots tr.snapshot').length > 0")
        await page.screenshot(ARTIFACTS / "2-linked-echo-snapshots.png")

        await page.viewport(390, 844, mobile=True)
        await page.screenshot(ARTIFACTS / "3-phone-size.png")
        width = await page.eval("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"

    listing = get_json(sandbox_bridge.url + "/api/v1/sessions/newcomer/snapshots")
    assert listing["snapshots"], "the snapshot list the dashboard showed is the API's"


async def test_every_event_and_the_metrics_say_sandbox(sandbox_bridge: BridgeProcess) -> None:
    base = sandbox_bridge.url
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/api/v1/sessions", json={"id": "label-check"}) as resp:
            assert resp.status == 201
        seen = []
        async with http.get(base + "/api/v1/events?after=0", timeout=aiohttp.ClientTimeout(sock_read=5)) as resp:
            try:
                async for raw in resp.content:
                    if raw.startswith(b"data: "):
                        seen.append(json.loads(raw[6:]))
                        if any(e["session"] == "label-check" for e in seen):
                            break
            except TimeoutError:
                pass
        assert any(e["session"] == "label-check" for e in seen), seen
        assert all(e.get("sandbox") is True for e in seen), [e for e in seen if not e.get("sandbox")]
        async with http.get(base + "/metrics") as resp:
            assert "bridge_sandbox 1.0" in await resp.text()
        async with http.get(base + "/api/v1/sandbox") as resp:
            described = await resp.json()
        assert described["sandbox"] is True and Path(described["auth_root"]).parts[-3:] == ("data", "sandbox", "auth")


def test_sandbox_refuses_a_production_auth_root_that_holds_data(tmp_path: Path) -> None:
    production = tmp_path / "auth"
    (production / "shop-1").mkdir(parents=True)
    (production / "shop-1" / "creds.json").write_text("{}")
    done = run_bridge(tmp_path, "--sandbox", "--auth-root", str(production), "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "sandbox mode refuses the auth root" in done.stderr
    assert sorted(p.name for p in production.iterdir()) == ["shop-1"], "nothing was written to the production root"
    assert not (tmp_path / "data").exists(), "no sandbox folder was made either"


def test_production_refuses_a_sandbox_auth_root(tmp_path: Path) -> None:
    root = tmp_path / "data" / "sandbox" / "auth"
    (root / AUTH_MARKER).parent.mkdir(parents=True)
    (root / AUTH_MARKER).write_bytes(MARKER_TEXT)
    done = run_bridge(tmp_path, "--auth-root", str(root), "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "belongs to a sandbox" in done.stderr


def test_sandbox_refuses_a_production_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "events.db").write_bytes(b"production history")
    done = run_bridge(tmp_path, "--sandbox", "--port", "0", BRIDGE_STATE_DIR=str(state))
    assert done.returncode == 2, done.stderr
    assert "refuses the state folder" in done.stderr
    assert not (state / STATE_MARKER).exists()


async def test_the_virtual_phone_links_by_pairing_code(sandbox_bridge: BridgeProcess) -> None:
    base = sandbox_bridge.url + "/api/v1"
    phone = "15557654321"
    async with aiohttp.ClientSession() as http:
        body = {"id": "by-code", "login": "pairing_code", "phone": phone}
        async with http.post(base + "/sessions", json=body) as resp:
            assert resp.status == 201
        async with http.post(base + "/sessions/by-code/pairing-code", json={"phone": phone}) as resp:
            assert resp.status == 200, await resp.text()
            code = (await resp.json())["code"]
        async with http.post(base + "/sandbox/pair-code", json={"phone": phone, "code": "WRONG123"}) as resp:
            assert resp.status == 422 and "virtual phone" in (await resp.json())["error"]["message"]
        async with http.post(base + "/sandbox/pair-code", json={"phone": phone, "code": code}) as resp:
            assert resp.status == 200, await resp.text()
        async with asyncio.timeout(120):
            while True:
                async with http.get(base + "/sessions/by-code") as resp:
                    view = await resp.json()
                if view["state"] == "open":
                    break
                await asyncio.sleep(0.3)
        assert view["me"].startswith(phone)
