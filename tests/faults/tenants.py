"""Tenants of a running bridge, as a customer of the API sees them: linked by QR (the simulator's
phone scans the QR from the event stream) or by pairing code, reached by a simulated contact, and
aged (fresh after pairing, settled, old: across a bridge restart with a scheduled snapshot).

Also the bookkeeping the verdicts need: who a folder says it is (`identity`), which key files it
holds, and where files that left it went (Baileys' consumed pre-keys go to the store's trash;
folders a restore replaced go to `.bridge/replaced/`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bridge.store.layout import CREDS_FILE, is_bridge_private
from tests.faults.service import TIMEOUT, BridgeProcess, is_kind
from tests.monitor.helpers import digest
from tests.sessions.conftest import fresh_phone
from tests.sessions.helpers import trashed
from tests.simulator.client import SimulatorClient


class Login(StrEnum):
    QR = "qr"
    CODE = "pairing_code"


class Age(StrEnum):
    """How long a tenant has lived when the damage comes."""

    FRESH = "fresh"  # a few seconds after pairing (issue 12 item 1: 9 s)
    SETTLED = "settled"  # a message received, the folder still for a while
    OLD = "old"  # settled, a scheduled snapshot, a bridge restart, more traffic since


FRESH_DELAY = 3.0
STILL_FOR = 12.0  # longer than the monitor waits before its settled snapshot (10 s)


@dataclass
class Tenant:
    sid: str
    login: Login
    phone: str
    contact: str
    me: str  # the account JID the API reported once open
    folder: Path
    received: list[str] = field(default_factory=list)

    @property
    def account(self) -> str:
        """The account part of the JID (`15551234567` of `15551234567:3@s.whatsapp.net`)."""
        return account_of(self.me)


def account_of(jid: str) -> str:
    return jid.split("@", 1)[0].split(":", 1)[0]


async def link(bridge: BridgeProcess, simulator: SimulatorClient, sid: str, login: Login) -> Tenant:
    """Create `sid` through the API and link it (QR scanned, or pairing code typed); wait for open."""
    phone = fresh_phone()
    await simulator.create_account(phone)
    contact = fresh_phone()
    await simulator.create_contact(contact)
    mark = bridge.mark()
    if login is Login.QR:
        await bridge.api("POST", "/api/v1/sessions", {"id": sid})
        qr = await bridge.wait_event(lambda e: e.get("session") == sid and is_kind(e, "qr"), after=mark)
        await simulator.scan(qr["data"]["qr"], phone=phone)
    else:
        await bridge.api("POST", "/api/v1/sessions", {"id": sid, "login": "pairing_code", "phone": phone})
        answer = await bridge.api("POST", f"/api/v1/sessions/{sid}/pairing-code", {"phone": phone})
        await simulator.enter_pairing_code(phone, answer["code"])
    await bridge.wait_state(sid, {"open"}, after=mark)
    info = await bridge.session(sid)
    assert info["me"] and account_of(info["me"]) == phone, info
    return Tenant(sid, login, phone, contact, info["me"], bridge.auth_root / sid)


async def deliver(bridge: BridgeProcess, simulator: SimulatorClient, tenant: Tenant, tag: str,
                  timeout: float = TIMEOUT) -> None:  # noqa: ASYNC109
    """A contact writes to the tenant's number; the text must come out of the bridge's event stream."""
    text = f"{tag} for {tenant.sid} {time.monotonic_ns()}"
    mark = bridge.mark()
    await simulator.send_from_contact(tenant.contact, tenant.phone, text)
    await bridge.wait_event(
        lambda e: e.get("session") == tenant.sid and is_kind(e, "message") and e["data"].get("text") == text,
        after=mark, timeout=timeout,
    )
    tenant.received.append(text)


async def wait_still(folder: Path, still_for: float = STILL_FOR, within: float = 90.0) -> None:
    """Wait until no file of `folder` has changed for `still_for` seconds."""
    deadline = time.monotonic() + within
    previous = await asyncio.to_thread(digest, folder)
    since = time.monotonic()
    while time.monotonic() - since < still_for:
        assert time.monotonic() < deadline, f"{folder} kept changing for {within:.0f} s"
        await asyncio.sleep(0.5)
        current = await asyncio.to_thread(digest, folder)
        if current != previous:
            previous, since = current, time.monotonic()


async def age(bridge: BridgeProcess, simulator: SimulatorClient, tenants: list[Tenant], to: Age) -> None:
    """Bring freshly linked tenants to an age (FRESH: wait a few seconds only)."""
    if to is Age.FRESH:
        await asyncio.sleep(FRESH_DELAY)
        return
    for tenant in tenants:
        await deliver(bridge, simulator, tenant, "settling")
    for tenant in tenants:
        await wait_still(tenant.folder)
    if to is Age.OLD:
        for tenant in tenants:
            await bridge.api("POST", f"/api/v1/sessions/{tenant.sid}/snapshots", {"reason": "scheduled"})
        await restart(bridge, tenants)
        for tenant in tenants:
            await deliver(bridge, simulator, tenant, "after restart")
        for tenant in tenants:
            await wait_still(tenant.folder, 2.0)


async def restart(bridge: BridgeProcess, tenants: list[Tenant]) -> None:
    """SIGTERM the bridge (exit 0 expected), start it again, wait until the tenants are open."""
    mark = bridge.mark()
    code = await bridge.stop()
    assert code == 0, bridge.log()[-3000:]
    await bridge.start()
    for tenant in tenants:
        await bridge.wait_state(tenant.sid, {"open"}, after=mark)


def identity(folder: Path) -> str | None:
    """The account JID in `folder/creds.json` (None when absent, unreadable or unregistered)."""
    try:
        creds = json.loads((folder / CREDS_FILE).read_text())
    except (OSError, ValueError):
        return None
    me = creds.get("me") if isinstance(creds, dict) else None
    return me.get("id") if isinstance(me, dict) else None


def key_files(folder: Path) -> set[str]:
    """Names of the Signal key files in an auth folder (everything but creds.json and dot names)."""
    try:
        return {p.name for p in folder.iterdir() if p.name != CREDS_FILE and not is_bridge_private(p.name)
                and p.suffix == ".json"}
    except FileNotFoundError:
        return set()


def trashed_keys(auth_root: Path, sid: str) -> set[str]:
    """Key files Baileys deleted through the store (consumed pre-keys), by original name."""
    return trashed(auth_root / ".bridge" / "trash" / sid)


def replaced_folders(auth_root: Path, sid: str) -> list[Path]:
    """Folders of `sid` that restores moved aside (`.bridge/replaced/<sid>-<time>-<rand>`)."""
    found = auth_root / ".bridge" / "replaced"
    return sorted(p for p in found.glob(f"{sid}-*") if p.is_dir()) if found.is_dir() else []
