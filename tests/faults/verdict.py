"""What must hold after each fault of issue 12, as assertions on the bridge seen from outside.

- `reopened`: the tenant ends `open` on its own account, a contact's message reaches it through
  the event stream, exactly one incident and one critical alert were raised, and no intact key file
  left the folder except into the store's trash (Baileys consuming a pre-key). Prints the time from
  the damage to open.
- `held_stopped`: where the bridge cannot know the right answer (foreign or swapped creds), the
  tenant is stopped with exactly one incident and one critical alert, never opened on the foreign
  account, and the foreign creds.json is left as it is.
- `clean_exit`: the bridge never exited on its own, stops with exit 0, never printed a traceback,
  and never deleted or truncated anything under the auth root (audit hook).
"""

from __future__ import annotations

import asyncio
import time

from tests.faults.service import TIMEOUT, BridgeProcess, Event, is_kind, summary
from tests.faults.tenants import Tenant, account_of, deliver, identity, key_files, replaced_folders, trashed_keys
from tests.simulator.client import SimulatorClient

REPAIR_TIMEOUT = 45.0
INCIDENT_TIMEOUT = 30.0  # the monitor scans every second here; a repair takes a few seconds
QUIET = 3.0  # three monitor scans: room for any follow-on alert or second incident to show up
STOPPED = {"stopped", "failed"}
FINAL = {"logged_out", "banned"}  # no way back without a new link: waiting longer cannot help


def about(event: Event, sid: str) -> bool:
    """An event of `sid`, one naming it among several (`data.sessions`, e.g. a swap of two
    folders), or a session-less one (a fault of the whole root)."""
    data = event.get("data") or {}
    return event.get("session") in (sid, None) or sid in (data.get("sessions") or ())


def opens_incident(event: Event, sid: str) -> bool:
    """An incident about `sid`: its `incident` event, or the critical alert that opened it (both
    carry the incident id; the IncidentDesk publishes both, whoever opened it)."""
    if not about(event, sid):
        return False
    if is_kind(event, "incident"):
        return True
    data = event.get("data") or {}
    return is_kind(event, "alert") and data.get("severity") == "critical" and bool(data.get("incident"))


def incidents(bridge: BridgeProcess, mark: int, sid: str) -> list[str]:
    """Ids of the distinct incidents about `sid` after `mark`."""
    ids: list[str] = []
    for e in bridge.events[mark:]:
        if opens_incident(e, sid):
            data = e["data"]
            key = str(data.get("id") if is_kind(e, "incident") else data.get("incident"))
            if key not in ids:
                ids.append(key)
    return ids


def criticals(bridge: BridgeProcess, mark: int, sid: str) -> list[Event]:
    """Critical alerts about `sid`, including the alert of an incident that names it."""
    theirs = set(incidents(bridge, mark, sid))
    return [
        e for e in bridge.since(mark, kind="alert")
        if e["data"].get("severity") == "critical" and (about(e, sid) or e["data"].get("incident") in theirs)
    ]


def resolved_notices(bridge: BridgeProcess, mark: int, sid: str) -> list[Event]:
    """The `info` alerts (`resolved: true`) that say an incident about `sid` is over."""
    theirs = set(incidents(bridge, mark, sid))
    return [e for e in bridge.since(mark, kind="alert") if e["data"].get("resolved")
            and e["data"].get("incident") in theirs]


def one_storage_incident(bridge: BridgeProcess, mark: int, sid: str) -> None:
    """A storage fault, once storage is back and the tenant open again: one incident (whichever of
    the session and the monitor saw it first), one critical alert, one notice that it is over."""
    found, alerts = incidents(bridge, mark, sid), criticals(bridge, mark, sid)
    over = resolved_notices(bridge, mark, sid)
    assert len(found) == 1, f"{len(found)} incidents: {found}"
    assert len(alerts) == 1, f"{len(alerts)} critical alerts: {[e['data'] for e in alerts]}"
    assert len(over) == 1, f"{len(over)} resolved notices: {[e['data'] for e in over]}"


async def wait_incident(bridge: BridgeProcess, sid: str, mark: int) -> Event:
    return await bridge.wait_event(
        lambda e: opens_incident(e, sid), after=mark, timeout=INCIDENT_TIMEOUT
    )


def report(label: str, seconds: float | None, detail: str = "") -> None:
    shown = f"{seconds:.2f} s" if seconds is not None else "never"
    print(f"\nFAULT-TIMING {label}: damage -> open {shown} {detail}".rstrip())


async def wait_api_state(bridge: BridgeProcess, sid: str, states: set[str], timeout: float) -> dict[str, object]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        info = await bridge.session(sid)
        if info["state"] in states:
            return info
        if time.monotonic() > deadline or info["state"] in FINAL - states:
            raise AssertionError(f"{sid} is {info['state']} ({info}), not {states}; events: "
                                 f"{[summary(e) for e in bridge.since(0, sid)][-30:]}")
        await asyncio.sleep(0.2)


def moved_away(bridge: BridgeProcess, tenant: Tenant, intact: set[str]) -> set[str]:
    """Intact key files that are neither in the folder nor in the trash (where did they go?)."""
    return intact - key_files(tenant.folder) - trashed_keys(bridge.auth_root, tenant.sid)


async def reopened(
    bridge: BridgeProcess,
    simulator: SimulatorClient,
    tenant: Tenant,
    *,
    mark: int,
    damaged_at: float,
    intact: set[str],
    label: str,
    incidents_expected: int | None = 1,
) -> float:
    """Assert the tenant came back on its own identity; returns seconds from damage to open."""
    sid = tenant.sid
    if incidents_expected != 0:
        await wait_incident(bridge, sid, mark)
    await wait_api_state(bridge, sid, {"open"}, REPAIR_TIMEOUT)
    seen_open = time.time()
    opens = [e for e in bridge.since(mark, sid, "state") if e["data"]["state"] == "open"]
    open_at = max([float(e["ts"]) for e in opens], default=seen_open)
    took = max(0.0, open_at - damaged_at)
    report(label, took, f"(states {[e['data']['state'] for e in bridge.since(mark, sid, 'state')]})")
    await asyncio.sleep(QUIET)
    info = await wait_api_state(bridge, sid, {"open"}, 1.0)
    assert info["me"] and account_of(str(info["me"])) == tenant.account, f"{sid} now runs as {info['me']}"
    on_disk = identity(tenant.folder)
    assert on_disk is not None and account_of(on_disk) == tenant.account, f"{sid}'s creds.json is {on_disk}"
    assert not bridge.since(mark, sid, "qr"), f"{sid} asked for a new QR after {label}"
    lost = moved_away(bridge, tenant, intact)
    assert not lost, (f"{len(lost)} of {len(intact)} intact key files left {tenant.folder} "
                      f"(replaced folders: {replaced_folders(bridge.auth_root, sid)}): {sorted(lost)[:10]}")
    found = incidents(bridge, mark, sid)
    alerts = criticals(bridge, mark, sid)
    if incidents_expected is None:  # damage that goes on after a repair may be repaired again
        assert found, "no incident"
    else:
        assert len(found) == incidents_expected, f"{len(found)} incidents: {found}"
    assert len(alerts) == max(1, len(found)), (f"{len(alerts)} critical alerts for {len(found)} incidents: "
                                               f"{[e['data'] for e in alerts]}")
    await deliver(bridge, simulator, tenant, f"after {label}", timeout=TIMEOUT)
    return took


async def held_stopped(
    bridge: BridgeProcess, tenant: Tenant, *, mark: int, foreign: bytes | None, label: str
) -> None:
    """Assert the tenant was stopped with one incident and never opened as someone else."""
    sid = tenant.sid
    await wait_incident(bridge, sid, mark)
    info = await wait_api_state(bridge, sid, STOPPED, REPAIR_TIMEOUT)
    await asyncio.sleep(QUIET)
    info = await wait_api_state(bridge, sid, STOPPED, 1.0)
    print(f"\nFAULT-TIMING {label}: {sid} held {info['state']} ({info.get('last_disconnect_reason')})")
    found = incidents(bridge, mark, sid)
    assert len(found) == 1, f"{len(found)} incidents for {sid}: {found}"
    alerts = criticals(bridge, mark, sid)
    assert len(alerts) == 1, f"{len(alerts)} critical alerts for {sid}: {[e['data'] for e in alerts]}"
    if foreign is not None:
        assert (tenant.folder / "creds.json").read_bytes() == foreign, "the foreign creds.json was overwritten"


async def clean_exit(bridge: BridgeProcess) -> None:
    """The process is still up, stops with exit 0, and its log holds no traceback or audit hit."""
    assert bridge.running, f"the bridge exited by itself ({bridge.proc.returncode if bridge.proc else '?'}):\n" \
        + bridge.log()[-4000:]
    code = await bridge.stop()
    log = bridge.log()
    assert "AUDIT-VIOLATION" not in log, [line for line in log.splitlines() if "AUDIT-VIOLATION" in line]
    assert "Traceback" not in log, log[log.index("Traceback") - 300:][:4000]
    assert code == 0, f"exit code {code}:\n{log[-3000:]}"
