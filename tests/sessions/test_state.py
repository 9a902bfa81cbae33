"""The session state model as a specification: every arrow of docs/sessions.md, no process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bridge.sessions.state import (
    ACTIVE,
    HALTED,
    HOSTED,
    LINKING,
    RESTORABLE,
    TERMINAL,
    CancelReconnect,
    ClearIncident,
    ClearQr,
    Closed,
    Connecting,
    DropHeldWrites,
    FlushHeldWrites,
    FollowIncident,
    KeepQr,
    LinkNewDevice,
    Logout,
    Opened,
    PairingCodeIssued,
    ProbeDue,
    ProbeStorage,
    QrIssued,
    RaiseAlert,
    ReconnectDue,
    RecordIdentity,
    ReportStorageFault,
    ResetBackoff,
    ResetLogin,
    Restored,
    RestoreVanishedCreds,
    RuntimeExited,
    RuntimeFatal,
    RuntimeRestarted,
    ScheduleProbe,
    ScheduleReconnect,
    SendLogout,
    SendStart,
    SendStop,
    SessionEvent,
    SessionState,
    SetDesired,
    Shutdown,
    Start,
    StartDeferred,
    StartRefused,
    Stop,
    StorageFault,
    StorageRecovered,
    TakeSnapshot,
    transition,
)

S = SessionState


def test_state_groups_cover_every_state_once() -> None:
    assert ACTIVE | TERMINAL == frozenset(S)
    assert not ACTIVE & TERMINAL
    assert ACTIVE == {S.STARTING, S.QR, S.PAIRING, S.CONNECTING, S.OPEN, S.RECONNECTING, S.SUSPENDED}
    assert HOSTED == ACTIVE - {S.SUSPENDED}
    assert HALTED == {S.LOGGED_OUT, S.BANNED, S.FAILED}
    assert RESTORABLE == {S.STOPPED, *HALTED}
    assert LINKING == {S.STARTING, S.QR, S.PAIRING, S.CONNECTING} and LINKING < ACTIVE


def test_state_module_imports_nothing_heavy() -> None:
    """Monitor and API import the groups; that must not pull in the event loop or the bus."""
    heavy = ("asyncio", "msgspec", "bridge.events")
    code = f"import sys, bridge.sessions.state; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("state", sorted(TERMINAL - {S.LOGGED_OUT}))
def test_start_from_a_terminal_state_records_desire_and_restores_vanished_creds_before_starting(
    state: SessionState,
) -> None:
    t = transition(state, Start())
    assert t.state is S.STARTING
    assert t.actions == [
        SetDesired(True), FollowIncident(None), ResetBackoff(), ResetLogin(), FlushHeldWrites(),
        RestoreVanishedCreds(), SendStart()
    ]


def test_start_after_logout_links_a_new_device_instead_of_restoring() -> None:
    t = transition(S.LOGGED_OUT, Start())
    assert t.state is S.STARTING
    assert t.actions == [
        SetDesired(True), FollowIncident(None), ResetBackoff(), ResetLogin(), FlushHeldWrites(), LinkNewDevice(),
        SendStart()
    ]


@pytest.mark.parametrize("state", sorted(ACTIVE))
def test_start_while_active_is_ignored(state: SessionState) -> None:
    t = transition(state, Start())
    assert (t.state, t.changed, t.actions) == (state, False, [])


def test_qr_login_path_starting_qr_connecting_open() -> None:
    t = transition(S.STARTING, Connecting())
    assert t.state is S.CONNECTING
    t = transition(t.state, QrIssued("ref-1", 100.0))
    assert t.state is S.QR and t.actions == [KeepQr("ref-1", 100.0)]
    t = transition(t.state, QrIssued("ref-2", 120.0))
    assert t.state is S.QR and t.actions == [KeepQr("ref-2", 120.0)]
    # after the scan Baileys closes with 515 and the runtime reconnects by itself
    t = transition(t.state, Closed(515, "restart required"))
    assert t.state is S.CONNECTING and t.reason == "restart_required"
    assert not any(isinstance(a, (SendStart, ScheduleReconnect)) for a in t.actions)
    t = transition(t.state, Opened())
    assert t.state is S.OPEN
    assert t.actions == [CancelReconnect(), ResetBackoff(), ClearQr(), ClearIncident(), RecordIdentity()]


def test_pairing_code_moves_to_pairing_and_later_qrs_keep_it_there() -> None:
    t = transition(S.QR, PairingCodeIssued("ABCD1234"))
    assert t.state is S.PAIRING
    again = transition(S.PAIRING, PairingCodeIssued("ABCD1234"))
    assert again.changed is False and again.actions == []
    t = transition(S.PAIRING, QrIssued("ref-3", 50.0))
    assert t.state is S.PAIRING and t.changed is False and t.actions == [KeepQr("ref-3", 50.0)]


@pytest.mark.parametrize("code", [428, 408, 503, 500, None, 999])
@pytest.mark.parametrize("state", [S.OPEN, S.CONNECTING, S.QR, S.STARTING, S.PAIRING])
def test_transient_close_schedules_a_backoff_reconnect(state: SessionState, code: int | None) -> None:
    t = transition(state, Closed(code))
    assert t.state is S.RECONNECTING and t.actions == [ScheduleReconnect()]
    t = transition(t.state, ReconnectDue())
    assert t.state is S.STARTING and t.actions == [SendStart()]


def test_reconnecting_gets_back_to_open_through_connecting() -> None:
    t = transition(S.RECONNECTING, Connecting())
    assert t.state is S.CONNECTING
    assert transition(t.state, Opened()).state is S.OPEN


@pytest.mark.parametrize(
    ("code", "state", "snapshot", "alert"),
    [
        (401, S.LOGGED_OUT, "logged_out", "logged_out"),
        (403, S.BANNED, "banned", "banned"),
        (440, S.FAILED, None, "connection_replaced"),
        (411, S.FAILED, None, "multidevice_mismatch"),
    ],
)
def test_final_closes_stop_snapshot_first_and_alert(
    code: int, state: SessionState, snapshot: str | None, alert: str
) -> None:
    t = transition(S.OPEN, Closed(code, "boom"))
    assert t.state is state
    kinds = [type(a) for a in t.actions]
    assert ScheduleReconnect not in kinds and SendStart not in kinds
    assert t.actions[0] == CancelReconnect()
    if snapshot is not None:
        # the snapshot comes before anything else touches the runtime
        assert t.actions[1] == TakeSnapshot(snapshot)
    else:
        assert TakeSnapshot not in kinds
    assert SetDesired(False) in t.actions and SendStop() in t.actions
    alerts = [a for a in t.actions if isinstance(a, RaiseAlert)]
    assert len(alerts) == 1 and alerts[0].kind == alert and alerts[0].severity == "critical"


def test_api_logout_snapshots_before_baileys_logout() -> None:
    t = transition(S.OPEN, Logout())
    assert t.state is S.LOGGED_OUT
    assert t.actions[0] == SetDesired(False)
    assert t.actions.index(TakeSnapshot("logout")) < t.actions.index(SendLogout())
    # Baileys' own 401 close that follows is ignored: no second snapshot, no alert
    after = transition(t.state, Closed(401))
    assert after.changed is False and after.actions == []


@pytest.mark.parametrize("state", [s for s in SessionState if s is not S.OPEN])
def test_logout_only_when_open(state: SessionState) -> None:
    assert transition(state, Logout()).changed is False


@pytest.mark.parametrize("state", sorted(ACTIVE))
def test_stop_from_active_records_the_desire_first_then_stops_everything(state: SessionState) -> None:
    t = transition(state, Stop())
    assert t.state is S.STOPPED
    assert t.actions == [SetDesired(False), FollowIncident(None), CancelReconnect(), SendStop(), ClearQr()]


@pytest.mark.parametrize("state", sorted(ACTIVE))
def test_shutdown_stops_but_keeps_the_desire_to_run(state: SessionState) -> None:
    t = transition(state, Shutdown())
    assert t.state is S.STOPPED and t.reason == "shutdown"
    assert not any(isinstance(a, SetDesired) for a in t.actions)
    assert SendStop() in t.actions


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_shutdown_leaves_terminal_states_alone(state: SessionState) -> None:
    assert transition(state, Shutdown()).changed is False


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_stop_keeps_a_final_state_visible_and_only_records_the_desire(state: SessionState) -> None:
    t = transition(state, Stop())
    assert t.state is state and t.changed is False and t.actions == [SetDesired(False), FollowIncident(None)]


STALE_EVENTS: list[SessionEvent] = [
    Connecting(),
    QrIssued("late", 1.0),
    PairingCodeIssued("LATE0000"),
    Opened(),
    Closed(428),
    Closed(401),
    ReconnectDue(),
    RuntimeExited("gone"),
    RuntimeRestarted(),
    RuntimeFatal("loop"),
    StartRefused("locked"),
]


@pytest.mark.parametrize("event", STALE_EVENTS)
@pytest.mark.parametrize("state", [*sorted(TERMINAL), S.SUSPENDED])
def test_stale_runtime_events_never_resurrect_a_session_without_a_runtime(
    state: SessionState, event: SessionEvent
) -> None:
    t = transition(state, event)
    assert (t.state, t.changed, t.actions) == (state, False, [])


def test_runtime_crash_waits_for_restart_then_starts_again() -> None:
    t = transition(S.OPEN, RuntimeExited("signal 9"))
    assert t.state is S.RECONNECTING and t.reason.startswith("runtime_exited")
    assert ScheduleReconnect() not in t.actions  # NodeProcess owns the process backoff
    t = transition(t.state, RuntimeRestarted())
    assert t.state is S.STARTING and t.actions == [SendStart()]


@pytest.mark.parametrize("state", sorted(HOSTED))
def test_runtime_fatal_fails_the_session_with_a_critical_alert(state: SessionState) -> None:
    t = transition(state, RuntimeFatal("5 exits in 60 s"))
    assert t.state is S.FAILED
    alerts = [a for a in t.actions if isinstance(a, RaiseAlert)]
    assert alerts and alerts[0].severity == "critical" and alerts[0].kind == "runtime_fatal"


def test_reconnect_due_outside_reconnecting_is_ignored() -> None:
    for state in SessionState:
        if state is not S.RECONNECTING:
            assert transition(state, ReconnectDue()).changed is False


def test_every_state_and_event_pair_is_handled() -> None:
    events: list[SessionEvent] = [Start(), Stop(), Shutdown(), Logout(), Restored(), *STALE_EVENTS]
    for state in SessionState:
        for event in events:
            t = transition(state, event)
            assert isinstance(t.state, SessionState)
            if not t.changed:
                assert t.state is state


@pytest.mark.parametrize("state", sorted(HOSTED))
def test_start_refused_fails_without_retrying(state: SessionState) -> None:
    t = transition(state, StartRefused("session lock held by pid 42"))
    assert t.state is S.FAILED and t.reason == "start_refused"
    assert ScheduleReconnect() not in t.actions and SendStart() not in t.actions
    alerts = [a for a in t.actions if isinstance(a, RaiseAlert)]
    assert alerts and alerts[0].kind == "start_refused" and "pid 42" in alerts[0].message


@pytest.mark.parametrize("state", [S.LOGGED_OUT, S.BANNED, S.FAILED])
def test_a_restore_clears_a_final_state_so_the_restored_creds_are_used(state: SessionState) -> None:
    t = transition(state, Restored())
    assert t.state is S.STOPPED and t.reason == "restored" and t.actions == [DropHeldWrites()]


@pytest.mark.parametrize("state", sorted(ACTIVE))
def test_restored_is_ignored_elsewhere(state: SessionState) -> None:
    t = transition(state, Restored())
    assert (t.state, t.changed, t.actions) == (state, False, [])


def test_a_restore_into_a_stopped_session_drops_what_a_storage_fault_held_back() -> None:
    t = transition(S.STOPPED, Restored())
    assert (t.state, t.changed, t.actions) == (S.STOPPED, False, [DropHeldWrites()])


@pytest.mark.parametrize("state", sorted(HOSTED))
def test_a_storage_fault_suspends_the_session_without_its_socket_and_reports_once(state: SessionState) -> None:
    t = transition(state, StorageFault("storage_full", "disk full"))
    assert t.state is S.SUSPENDED and t.reason == "storage_full"
    assert t.actions == [
        CancelReconnect(), SendStop(), ClearQr(), ReportStorageFault("storage_full", "disk full"), ScheduleProbe()
    ]
    assert not any(isinstance(a, (RaiseAlert, SetDesired, TakeSnapshot)) for a in t.actions)


def test_a_suspended_session_probes_until_storage_works_then_starts_again() -> None:
    t = transition(S.SUSPENDED, ProbeDue())
    assert (t.state, t.changed, t.actions) == (S.SUSPENDED, False, [ProbeStorage()])
    still = transition(S.SUSPENDED, StorageFault("storage_full", "still full"))
    assert still.changed is False
    assert still.actions == [ReportStorageFault("storage_full", "still full"), ScheduleProbe()]
    t = transition(S.SUSPENDED, StorageRecovered())
    assert t.state is S.STARTING and t.reason == "storage_recovered" and t.actions == [SendStart()]


def test_a_suspended_session_stops_and_ignores_start() -> None:
    assert transition(S.SUSPENDED, Start()).changed is False
    t = transition(S.SUSPENDED, Stop())
    assert t.state is S.STOPPED and SendStop() in t.actions and t.actions[0] == SetDesired(False)


@pytest.mark.parametrize("event", [ProbeDue(), StorageRecovered(), StorageFault("storage_io", "EIO")])
@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_storage_events_change_nothing_in_a_terminal_state(state: SessionState, event: SessionEvent) -> None:
    assert transition(state, event).changed is False and transition(state, event).actions == []


def test_the_monitor_stops_and_restarts_a_session_within_its_incident_until_it_is_open() -> None:
    t = transition(S.OPEN, Stop(incident="20261125T120102Z-a1b2c3"))
    assert t.state is S.STOPPED and t.actions[1] == FollowIncident("20261125T120102Z-a1b2c3")
    t = transition(S.STOPPED, Start(incident="20261125T120102Z-a1b2c3"))
    assert t.actions[1] == FollowIncident("20261125T120102Z-a1b2c3")
    assert ClearIncident() in transition(S.CONNECTING, Opened()).actions
    assert transition(S.STOPPED, Start()).actions[1] == FollowIncident(None)  # an operator's start ends it


def test_a_session_the_bridge_cannot_start_stays_stopped_with_the_fault_as_its_reason() -> None:
    t = transition(S.STOPPED, StartDeferred("storage_read_only", "read-only file system"))
    assert (t.state, t.reason, t.changed) == (S.STOPPED, "storage_read_only", True)
    assert t.actions == [ReportStorageFault("storage_read_only", "read-only file system")]
    assert transition(S.LOGGED_OUT, StartDeferred("storage_full", "full")).changed is False
