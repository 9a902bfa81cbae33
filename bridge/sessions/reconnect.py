"""What to do when a Baileys connection closes: the DisconnectReason table (docs/reconnection.md).

Baileys ends a socket with a Boom whose `statusCode` is one of its `DisconnectReason` values
(lib/Types/index.js), a stream-error `code` attribute (`<stream:error code="515">`, `conflict`
maps to 440), or a `<failure reason="...">` code. The runtime forwards that number; this module
turns it into one of a few actions. It is pure data, so every row can be tested without a process
and each row is also exercised against the simulator. The delays between attempts come from the
bridge's one backoff policy, `bridge.delivery.Backoff` (settings `reconnect_initial`/`reconnect_max`).

Why these choices:
- 515 restartRequired is a normal step after pairing: the runtime reconnects at once by itself,
  so Python only tracks it (no timer, no second `start`, which would race the runtime's own).
- Transient network trouble (428, 408, 503, 500, unknown codes) retries forever with capped
  exponential backoff and jitter, so a WhatsApp outage does not make 1000 tenants reconnect in
  lock-step.
- 401 and 403 mean the server will never accept these creds again: retrying only hammers the
  server and risks a ban. Stop, keep every file, snapshot, and page a human.
- 440 means another client took over this device. Reconnecting would take it back, which kicks
  the other one, which takes it back again: stop and alert instead of fighting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DisconnectReason:
    """Baileys 7.0.0-rc14 `DisconnectReason` values (timedOut and connectionLost share 408)."""

    CONNECTION_CLOSED = 428
    CONNECTION_LOST = 408
    TIMED_OUT = 408
    CONNECTION_REPLACED = 440
    LOGGED_OUT = 401
    BAD_SESSION = 500
    RESTART_REQUIRED = 515
    MULTIDEVICE_MISMATCH = 411
    FORBIDDEN = 403
    UNAVAILABLE_SERVICE = 503


class ReconnectAction(StrEnum):
    """What the session does after a close with a given code."""

    RESTART_NOW = "restart_now"  # the runtime restarts the socket itself; Python only tracks it
    BACKOFF = "backoff"  # send `start` again after an exponential, jittered, capped delay
    LOGGED_OUT = "logged_out"  # stop, keep files, snapshot, critical alert
    BANNED = "banned"  # stop, keep files, snapshot, critical alert
    REPLACED = "replaced"  # stop and alert; an operator decides which client wins
    FAILED = "failed"  # stop and alert; needs an operator (e.g. multi-device mismatch)


@dataclass(frozen=True, slots=True)
class ReconnectRule:
    """One row of the table: the code, Baileys' name for it, the action, and the reason label
    used in `state` events and alerts."""

    code: int | None
    name: str
    action: ReconnectAction
    reason: str


RULES: tuple[ReconnectRule, ...] = (
    ReconnectRule(515, "restartRequired", ReconnectAction.RESTART_NOW, "restart_required"),
    ReconnectRule(428, "connectionClosed", ReconnectAction.BACKOFF, "connection_closed"),
    ReconnectRule(408, "connectionLost/timedOut", ReconnectAction.BACKOFF, "connection_lost"),
    ReconnectRule(503, "unavailableService", ReconnectAction.BACKOFF, "service_unavailable"),
    ReconnectRule(500, "badSession", ReconnectAction.BACKOFF, "bad_session"),
    ReconnectRule(401, "loggedOut", ReconnectAction.LOGGED_OUT, "logged_out"),
    ReconnectRule(403, "forbidden", ReconnectAction.BANNED, "banned"),
    ReconnectRule(440, "connectionReplaced", ReconnectAction.REPLACED, "connection_replaced"),
    ReconnectRule(411, "multideviceMismatch", ReconnectAction.FAILED, "multidevice_mismatch"),
)
"""The table, in the order docs/reconnection.md lists it."""

UNKNOWN_RULE = ReconnectRule(None, "unknown", ReconnectAction.BACKOFF, "connection_error")
"""Any other code (or none): treated as transient, because giving up on an unknown code would
turn a harmless new server quirk into a manual re-login for every tenant."""

_BY_CODE = {rule.code: rule for rule in RULES}


def classify(status_code: int | None) -> ReconnectRule:
    """The rule for a close with `status_code` (None when the runtime saw no code)."""
    if status_code is None:
        return UNKNOWN_RULE
    return _BY_CODE.get(status_code, UNKNOWN_RULE)
