"""Every look checks which account a folder holds: foreign creds and swapped folders are one
incident each, overwrite nothing, and are said to be over once when the right folders are back.

Real Baileys folders (each made by its own `initAuthCreds()`, so each is its own account), damage
done from another process, a running watcher without a session manager (standalone beside a
legacy setup: nothing to stop, so the incident reports and waits for the operator).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.events import Event
from bridge.monitor.folder_check import inspect_folder
from bridge.store.identity import IdentityBook
from tests.monitor.helpers import damage, digest, make_legacy_folder, running_watcher, wait_event


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two linked tenants of two different accounts (two `initAuthCreds()`)."""
    base = tmp_path_factory.mktemp("accounts")
    make_legacy_folder(base / "alpha", 12)
    make_legacy_folder(base / "beta", 12)
    return {"alpha": base / "alpha", "beta": base / "beta"}


def alerts(events: list[Event]) -> list[tuple[str | None, str, str]]:
    return [(e.session, e.data["alert"], e.data["severity"]) for e in events if e.kind == "alert"]


async def test_a_copy_of_another_sessions_creds_is_one_incident_and_nothing_is_overwritten(
    accounts: dict[str, Path], auth_root: Path
) -> None:
    for name in ("alpha", "beta"):
        damage(f"cp -a {accounts[name]} {auth_root}/{name}")
    async with running_watcher(auth_root) as env:
        for name in ("alpha", "beta"):
            await wait_event(env.bus, lambda e, n=name: e.kind == "snapshot" and e.session == n)  # type: ignore[misc]
        book = IdentityBook(auth_root / ".bridge")
        assert book.expected("alpha") == inspect_folder(auth_root / "alpha").identity  # learnt on first sight
        mark = env.bus.last_seq
        damage(f"cp {auth_root}/beta/creds.json {auth_root}/alpha/creds.json")
        copied = digest(auth_root / "alpha")
        incident = await wait_event(env.bus, lambda e: e.kind == "incident", after=mark)
        await env.watcher.scan()
        await env.watcher.scan()  # still there: the same incident, not a new one
        assert digest(auth_root / "alpha") == copied  # nothing overwritten
        damage(f"cp {accounts['alpha']}/creds.json {auth_root}/alpha/creds.json")  # the operator puts it back
        over = await wait_event(env.bus, lambda e: e.kind == "alert" and e.data.get("resolved") is True, after=mark)
        await env.watcher.scan()
        after = env.bus.since(mark)
    assert incident.session == "alpha" and incident.data["kind"] == "creds_foreign"
    assert "session beta's account" in incident.data["detail"] and incident.data["restored"] is False
    assert alerts(after) == [("alpha", "creds_foreign", "critical"), ("alpha", "creds_foreign", "info")]
    assert over.data["incident"] == incident.data["id"]
    assert [e for e in after if e.kind == "incident"] == [incident]


async def test_two_swapped_folders_are_one_incident_naming_both(accounts: dict[str, Path], auth_root: Path) -> None:
    for name in ("alpha", "beta"):
        damage(f"cp -a {accounts[name]} {auth_root}/{name}")
    async with running_watcher(auth_root) as env:
        for name in ("alpha", "beta"):
            await wait_event(env.bus, lambda e, n=name: e.kind == "snapshot" and e.session == n)  # type: ignore[misc]
        before = {name: digest(auth_root / name) for name in ("alpha", "beta")}
        mark = env.bus.last_seq
        damage(f"cd {auth_root} && mv alpha x && mv beta alpha && mv x beta")
        incident = await wait_event(env.bus, lambda e: e.kind == "incident", after=mark)
        await asyncio.sleep(1.0)  # both folders' events handled
        await env.watcher.scan()
        assert digest(auth_root / "alpha") == before["beta"] and digest(auth_root / "beta") == before["alpha"]
        damage(f"cd {auth_root} && mv alpha x && mv beta alpha && mv x beta")
        await wait_event(env.bus, lambda e: e.kind == "alert" and e.data.get("resolved") is True, after=mark)
        await env.watcher.scan()
        after = env.bus.since(mark)
    assert incident.data["kind"] == "folders_swapped" and incident.data["sessions"] == ["alpha", "beta"]
    assert "move the two folders back" in incident.data["next_step"]
    assert [e for e in after if e.kind == "incident"] == [incident]
    assert [a for a in alerts(after) if a[2] == "critical"] == [(incident.session, "folders_swapped", "critical")]
    assert len([a for a in alerts(after) if a[2] == "info"]) == 1
    assert {name: digest(auth_root / name) for name in ("alpha", "beta")} == before
