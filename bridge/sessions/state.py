"""The session state model: states, the events that move them, and a pure transition function.

`transition(state, event)` returns the next state, a reason label, and a list of side effects
(`actions`) for `Session` to carry out in order. Nothing here touches a process, a timer or a file,
so every arrow of the diagram in docs/sessions.md is a plain unit test (the h11 habit: the
protocol is a state machine, the I/O lives elsewhere).

Rules the table keeps:
- An event that makes no sense in the current state (a late `qr` after a stop, a close after a
  logout) changes nothing: stale events from a runtime must never resurrect a stopped session.
- Terminal states (stopped, logged_out, banned, failed) only leave on an explicit start.
- A storage fault suspends the session (no socket) until a probe finds storage working again;
  what the fault held back is written before anything reads the folder again.
- Every path into logged_out or banned snapshots before anything else and never deletes a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from bridge.sessions.reconnect import ReconnectAction, classify

if TYPE_CHECKING:
    from bridge.events import Severity


class SessionState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    QR = "qr"
    PAIRING = "pairing"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    SUSPENDED = "suspended"
    LOGGED_OUT = "logged_out"
    BANNED = "banned"
    FAILED = "failed"


TERMINAL: frozenset[SessionState] = frozenset(
    {SessionState.STOPPED, SessionState.LOGGED_OUT, SessionState.BANNED, SessionState.FAILED}
)
"""States with no runtime work going on: no socket, no timer, no runtime event changes them;
only `Start` (and `Restored`, back to stopped) leaves them. `stopped` is one of them: the
transition table treats an operator's stop and an end imposed by WhatsApp or a fault alike."""

ACTIVE: frozenset[SessionState] = frozenset(SessionState) - TERMINAL
"""States in which a runtime and a socket are wanted (starting, qr, pairing, connecting, open,
reconnecting, suspended): the session may write its auth folder at any moment (a suspended one
writes the writes it holds back when storage returns), so the folder must not be replaced under
it: stop the session first."""

HOSTED: frozenset[SessionState] = ACTIVE - {SessionState.SUSPENDED}
"""Active states in which a runtime hosts the session, so runtime events mean something. A
suspended session has none: a late event of its stopped runtime changes nothing."""

HALTED: frozenset[SessionState] = TERMINAL - {SessionState.STOPPED}
"""Terminal states the operator did not ask for (logged_out, banned, failed): something ended the
session and a human has to act, so these are the states worth an alert and a reason."""

RESTORABLE: frozenset[SessionState] = TERMINAL
"""States in which a snapshot may be restored into the folder: no runtime touches it, and the
restore moves a halted session back to stopped (`Restored`) so its next start uses the files."""

LINKING: frozenset[SessionState] = frozenset(
    {SessionState.STARTING, SessionState.QR, SessionState.PAIRING, SessionState.CONNECTING}
)
"""States in which a new device link may be in progress (a start from logged_out links a new
device over the kept folder: the store snapshots the registered creds, then saves fresh
unregistered ones). In these states unregistered creds over registered ones are the bridge's own
doing, not damage. `starting` and `connecting` are also passed through by a linked session that
reconnects, so this group says "may be linking", never "is linking"."""

SETTLED: frozenset[SessionState] = frozenset(SessionState) - {SessionState.STARTING, SessionState.CONNECTING}
"""States in which a start is done talking to WhatsApp for now: it showed a QR or a pairing code,
opened, went to reconnect with backoff, or ended. The start-up ramp (bridge/sessions/ramp.py)
holds a start slot while a session is still starting or connecting, and frees it here."""

# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Operator/API asked the session to run (also `start_all()` after a bridge restart).
    `incident`: the monitor starts it as part of an incident it already alerted for."""

    incident: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Operator/API asked the session to stop; files and registration stay as they are.
    `incident`: the monitor stops it because of an incident it already alerted for."""

    incident: str | None = None


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The bridge is shutting down: stop the socket but keep the desired state, so the next
    bridge start (`start_all()`) brings the session back."""


@dataclass(frozen=True, slots=True)
class Logout:
    """Operator/API asked to unlink the device (only meaningful while open)."""


@dataclass(frozen=True, slots=True)
class Connecting:
    """The runtime opened (or is opening) a socket: `connection.update` connecting."""


@dataclass(frozen=True, slots=True)
class QrIssued:
    """Baileys produced a QR reference to scan."""

    qr: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class PairingCodeIssued:
    """Baileys returned a pairing code for the phone to enter."""

    code: str


@dataclass(frozen=True, slots=True)
class Opened:
    """`connection.update` open: logged in and ready to send."""


@dataclass(frozen=True, slots=True)
class Closed:
    """`connection.update` close, with Baileys' status code (None when there was none)."""

    status_code: int | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ReconnectDue:
    """The backoff timer fired."""


@dataclass(frozen=True, slots=True)
class RuntimeExited:
    """The Node process hosting the session died; NodeProcess restarts it with its own backoff."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeRestarted:
    """The Node process is running again after `RuntimeExited`: the session must be re-started."""


@dataclass(frozen=True, slots=True)
class RuntimeFatal:
    """NodeProcess gave up (crash loop): no more automatic restarts."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Restored:
    """An operator restored a snapshot into the (inactive) session's folder: whatever final state
    it was in no longer describes those files, so the next start uses them as they are (a
    logged-out session would otherwise link a new device over the restored creds)."""


@dataclass(frozen=True, slots=True)
class StartRefused:
    """The session could not be started for a reason retrying will not fix (its advisory lock is
    held by another bridge instance: two writers on one creds.json is how creds get torn; its
    vanished creds could not be restored). `kind` names the alert."""

    detail: str
    kind: str = "start_refused"
    incident_key: str | None = None
    """Set when other sessions may be refused for the same cause (swapped folders): one alert."""


@dataclass(frozen=True, slots=True)
class StorageFault:
    """Storage refused a write or read of this session (full, read-only, permission, I/O; see
    `bridge.store.durable.is_storage_fault`). The session stops using its socket at once so the
    runtime's memory never runs ahead of the disk; `code` is the fault's `StoreError.code`."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class StartDeferred:
    """The bridge cannot start this (stopped, wanted) session now: its auth root has a storage
    fault. It stays stopped with the fault as its reason until the bridge starts it."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class ProbeDue:
    """The storage probe timer of a suspended session fired."""


@dataclass(frozen=True, slots=True)
class StorageRecovered:
    """The probe wrote every held-back write and read the folder: storage works again."""


SessionEvent = (
    Start
    | Stop
    | Shutdown
    | Logout
    | Connecting
    | QrIssued
    | PairingCodeIssued
    | Opened
    | Closed
    | ReconnectDue
    | RuntimeExited
    | RuntimeRestarted
    | RuntimeFatal
    | StartRefused
    | Restored
    | StorageFault
    | StartDeferred
    | ProbeDue
    | StorageRecovered
)


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendStart:
    """Ask the runtime to start (or restart) the Baileys socket, starting the runtime if needed."""


@dataclass(frozen=True, slots=True)
class SendStop:
    """Ask the runtime to close the socket and forget the session (the runtime may go away)."""


@dataclass(frozen=True, slots=True)
class SendLogout:
    """Ask Baileys to log out (unlink this device on the server)."""


@dataclass(frozen=True, slots=True)
class ScheduleReconnect:
    """Arm the backoff timer; `ReconnectDue` follows."""


@dataclass(frozen=True, slots=True)
class CancelReconnect:
    """Disarm the backoff timer if armed."""


@dataclass(frozen=True, slots=True)
class ResetBackoff:
    """Connection succeeded: the next failure starts from the initial delay again."""


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Snapshot the auth folder before anything else happens to it."""

    reason: str


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Publish an alert on the bus (the monitor routes it to log / Telegram). With `incident_key`
    the alert opens (or joins, silently) the incident of that cause."""

    kind: str
    severity: Severity
    message: str
    incident_key: str | None = None


@dataclass(frozen=True, slots=True)
class ClearQr:
    """Forget the current QR (it is useless once linked or stopped)."""


@dataclass(frozen=True, slots=True)
class KeepQr:
    """Keep this QR as the current one and publish it."""

    qr: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ResetLogin:
    """A new start begins a new login: forget the QR count and the last pairing code."""


@dataclass(frozen=True, slots=True)
class LinkNewDevice:
    """Starting a logged-out session links a new device over the kept folder: make sure a
    snapshot of the registered creds exists, then have the runtime's next `auth.load` answer "no
    creds" (the store snapshots the registered creds again before fresh ones replace them)."""


@dataclass(frozen=True, slots=True)
class RestoreVanishedCreds:
    """creds.json vanished while the session was not running: if a snapshot holds linked creds,
    restore it (with a critical alert) instead of letting Baileys make a new identity. Fails with
    `StartRefused`."""


@dataclass(frozen=True, slots=True)
class FollowIncident:
    """From this state change on, the session's states belong to `incident` (None: to none). An
    incident someone already alerted for: the session raises no alert of its own until it is
    next open (exactly one alert per incident, follow-on states included). Takes effect with the
    state change, so its `state` event carries the id."""

    incident: str | None


@dataclass(frozen=True, slots=True)
class ClearIncident:
    """The session is well again: it leaves any incident it was part of."""


@dataclass(frozen=True, slots=True)
class RecordIdentity:
    """The session is open: record the identity of its linked creds if none is recorded yet, or
    if it has just linked a new device (checked at every start against this record)."""


@dataclass(frozen=True, slots=True)
class FlushHeldWrites:
    """Write what a storage fault held back, in order, before anything reads the folder again.
    Nothing held: nothing to do. Fails with `StorageFault`."""


@dataclass(frozen=True, slots=True)
class DropHeldWrites:
    """An operator restored a snapshot into the folder: what a storage fault held back belongs to
    the replaced content and must not be written over the restored one."""


@dataclass(frozen=True, slots=True)
class ReportStorageFault:
    """Open (or join) the bridge's storage incident: one critical alert for the incident, however
    many sessions and probes it touches; the session's state belongs to it until it is open."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class ScheduleProbe:
    """Arm the backoff timer; `ProbeDue` follows."""


@dataclass(frozen=True, slots=True)
class ProbeStorage:
    """Flush the held writes and read the folder: `StorageRecovered` when both work, else
    `StorageFault` (the one action whose success is also an event)."""


@dataclass(frozen=True, slots=True)
class SetDesired:
    """Record in the registry whether `start_all()` should start this session after a restart."""

    running: bool


SessionAction = (
    SendStart
    | SendStop
    | SendLogout
    | ScheduleReconnect
    | CancelReconnect
    | ResetBackoff
    | TakeSnapshot
    | RaiseAlert
    | ClearQr
    | KeepQr
    | ResetLogin
    | FollowIncident
    | ClearIncident
    | RecordIdentity
    | LinkNewDevice
    | RestoreVanishedCreds
    | FlushHeldWrites
    | DropHeldWrites
    | ReportStorageFault
    | ScheduleProbe
    | ProbeStorage
    | SetDesired
)
"""An action that fails returns the event describing the failure (e.g. `StartRefused`); the
rest of its transition's actions are then skipped and that event's transition decides what
follows.

A transition whose first action is `SetDesired` is an operator's request (start, stop, logout):
the desire is written before the new state is taken. If it cannot be written, a start is refused
whole (the state stays, the caller gets the `StoreError`); a stop or logout still happens (stopping
must always be possible) and the caller gets the `StoreError` afterwards, the registry unchanged."""


@dataclass(frozen=True, slots=True)
class Transition:
    """Result of one event: the new state, why, and the side effects in execution order.

    `changed` is False when the event was ignored (state and reason are then the old state and
    "ignored"), so callers publish `state` events only for real changes.
    """

    state: SessionState
    reason: str
    actions: list[SessionAction] = field(default_factory=list)
    changed: bool = True


def _ignore(state: SessionState) -> Transition:
    return Transition(state, "ignored", [], changed=False)


def _close_terminal(new: SessionState, reason: str, alert: RaiseAlert, snapshot: str | None) -> Transition:
    actions: list[SessionAction] = [CancelReconnect()]
    if snapshot is not None:
        actions.append(TakeSnapshot(snapshot))
    actions += [SendStop(), ClearQr(), SetDesired(False), alert]
    return Transition(new, reason, actions)


def _on_closed(state: SessionState, event: Closed) -> Transition:
    rule = classify(event.status_code)
    detail = f" ({event.message})" if event.message else ""
    if rule.action is ReconnectAction.RESTART_NOW:
        # The runtime restarts the socket itself (after pairing this is the normal path).
        return Transition(SessionState.CONNECTING, rule.reason, [ClearQr()])
    if rule.action is ReconnectAction.BACKOFF:
        return Transition(SessionState.RECONNECTING, rule.reason, [ScheduleReconnect()])
    if rule.action is ReconnectAction.LOGGED_OUT:
        alert = RaiseAlert(
            "logged_out",
            "critical",
            f"WhatsApp logged this device out (401){detail}. Every file was kept and snapshotted; "
            "link it again with a new QR or pairing code (start the session).",
        )
        return _close_terminal(SessionState.LOGGED_OUT, rule.reason, alert, "logged_out")
    if rule.action is ReconnectAction.BANNED:
        alert = RaiseAlert(
            "banned",
            "critical",
            f"WhatsApp refused this account (403 forbidden){detail}. Reconnects stopped, every file kept "
            "and snapshotted; check the number's status in the WhatsApp app before starting it again.",
        )
        return _close_terminal(SessionState.BANNED, rule.reason, alert, "banned")
    if rule.action is ReconnectAction.REPLACED:
        alert = RaiseAlert(
            "connection_replaced",
            "critical",
            f"Another client opened this session (440 connectionReplaced){detail}. Stopped instead of "
            "fighting it; stop the other client, then start this session again.",
        )
        return _close_terminal(SessionState.FAILED, rule.reason, alert, None)
    alert = RaiseAlert(
        rule.reason,
        "critical",
        f"WhatsApp closed the connection with {event.status_code} ({rule.name}){detail}; reconnects stopped. "
        "Start the session again once the cause is fixed.",
    )
    return _close_terminal(SessionState.FAILED, rule.reason, alert, None)


def transition(state: SessionState, event: SessionEvent) -> Transition:
    """The next state after `event` in `state`; see docs/sessions.md for the full table."""
    match event:
        case Start(incident=incident):
            if state not in TERMINAL:
                return _ignore(state)
            prepare: SessionAction = LinkNewDevice() if state is SessionState.LOGGED_OUT else RestoreVanishedCreds()
            return Transition(
                SessionState.STARTING,
                "start",
                [SetDesired(True), FollowIncident(incident), ResetBackoff(), ResetLogin(), FlushHeldWrites(), prepare,
                 SendStart()],
            )
        case Stop(incident=incident):
            if state in TERMINAL:
                # Keep logged_out/banned/failed visible; only the desired flag changes (a stop
                # repeated after a stop that could not be recorded records it now).
                return Transition(state, "stop", [SetDesired(False), FollowIncident(incident)], changed=False)
            return Transition(
                SessionState.STOPPED,
                "stop",
                [SetDesired(False), FollowIncident(incident), CancelReconnect(), SendStop(), ClearQr()],
            )
        case Shutdown():
            if state in TERMINAL:
                return _ignore(state)
            return Transition(SessionState.STOPPED, "shutdown", [CancelReconnect(), SendStop(), ClearQr()])
        case Logout():
            if state is not SessionState.OPEN:
                return _ignore(state)
            return Transition(
                SessionState.LOGGED_OUT,
                "logout",
                [SetDesired(False), CancelReconnect(), TakeSnapshot("logout"), SendLogout(), SendStop(), ClearQr()],
            )
        case Connecting():
            if state in (SessionState.STARTING, SessionState.RECONNECTING):
                return Transition(SessionState.CONNECTING, "connecting")
            return _ignore(state)
        case QrIssued(qr=qr, expires_at=expires_at):
            if state in (SessionState.STARTING, SessionState.CONNECTING, SessionState.QR):
                return Transition(SessionState.QR, "qr", [KeepQr(qr, expires_at)])
            if state is SessionState.PAIRING:
                # Baileys keeps rotating QR refs while a pairing code is pending: either works.
                return Transition(state, "qr", [KeepQr(qr, expires_at)], changed=False)
            return _ignore(state)
        case PairingCodeIssued():
            if state is SessionState.PAIRING:
                return Transition(state, "pairing_code", [], changed=False)
            if state in LINKING:
                return Transition(SessionState.PAIRING, "pairing_code")
            return _ignore(state)
        case Opened():
            if state in HOSTED:
                return Transition(
                    SessionState.OPEN,
                    "open",
                    [CancelReconnect(), ResetBackoff(), ClearQr(), ClearIncident(), RecordIdentity()],
                )
            return _ignore(state)
        case Closed():
            if state not in HOSTED:
                return _ignore(state)
            return _on_closed(state, event)
        case ReconnectDue():
            if state is SessionState.RECONNECTING:
                return Transition(SessionState.STARTING, "reconnect", [SendStart()])
            return _ignore(state)
        case RuntimeExited(detail=detail):
            if state not in HOSTED:
                return _ignore(state)
            reason = "runtime_exited" + (f": {detail}" if detail else "")
            return Transition(SessionState.RECONNECTING, reason, [CancelReconnect(), ClearQr()])
        case RuntimeRestarted():
            if state is SessionState.RECONNECTING:
                return Transition(SessionState.STARTING, "runtime_restarted", [SendStart()])
            return _ignore(state)
        case RuntimeFatal(detail=detail):
            if state not in HOSTED:
                return _ignore(state)
            alert = RaiseAlert(
                "runtime_fatal",
                "critical",
                f"The session's runtime was given up ({detail or 'crash loop'}). Auth files are untouched; "
                "fix the cause (see the runtime log), then start the session again.",
            )
            return Transition(SessionState.FAILED, "runtime_fatal", [CancelReconnect(), SendStop(), ClearQr(), alert])
        case Restored():
            if state is SessionState.STOPPED:
                return Transition(state, "restored", [DropHeldWrites()], changed=False)
            if state in TERMINAL:
                return Transition(SessionState.STOPPED, "restored", [DropHeldWrites()])
            return _ignore(state)
        case StartRefused(detail=detail, kind=kind, incident_key=key):
            if state not in HOSTED:
                return _ignore(state)
            alert = RaiseAlert(kind, "critical", f"The session could not start: {detail}", key)
            return Transition(SessionState.FAILED, kind, [CancelReconnect(), SendStop(), ClearQr(), alert])
        case StorageFault(code=code, detail=detail):
            if state in TERMINAL:
                return _ignore(state)
            report = ReportStorageFault(code, detail)
            if state is SessionState.SUSPENDED:
                return Transition(state, code, [report, ScheduleProbe()], changed=False)
            return Transition(
                SessionState.SUSPENDED, code, [CancelReconnect(), SendStop(), ClearQr(), report, ScheduleProbe()]
            )
        case StartDeferred(code=code, detail=detail):
            if state is SessionState.STOPPED:
                return Transition(state, code, [ReportStorageFault(code, detail)])
            return _ignore(state)
        case ProbeDue():
            if state is SessionState.SUSPENDED:
                return Transition(state, "probe", [ProbeStorage()], changed=False)
            return _ignore(state)
        case StorageRecovered():
            if state is SessionState.SUSPENDED:
                return Transition(SessionState.STARTING, "storage_recovered", [SendStart()])
            return _ignore(state)
    raise TypeError(f"unknown session event {event!r}")  # pragma: no cover
