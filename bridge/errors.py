"""One small error hierarchy, rooted at `BridgeError`.

Every message is written for an operator: it says what happened, to which path or session, and
what to do next. `code` is a stable machine-readable string used by the HTTP API and the IPC
protocol (`{"error": {"code": ..., "message": ...}}`).
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    code: str = "bridge_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(BridgeError):
    """Settings are missing or contradict each other; the bridge refuses to start."""

    code = "config_error"


class StoreError(BridgeError):
    """The auth store refused or failed an operation; no file was left half-written."""

    code = "store_error"


class CredsCorruptError(StoreError):
    """creds.json exists but cannot be read or parsed: restore it, never start fresh over it."""

    code = "creds_corrupt"


class HostileNameError(StoreError):
    """A key type or id would escape the session folder or is otherwise unsafe as a file name."""

    code = "hostile_name"


class SnapshotError(StoreError):
    """A snapshot, backup or restore failed verification or cannot be done now."""

    code = "snapshot_error"


class ProtocolError(BridgeError):
    """An IPC line broke the protocol (too long, undecodable, unknown kind/op, wrong session)."""

    code = "protocol_error"


class NodeRuntimeError(BridgeError):
    """The Node runtime could not be started, crashed, or did not answer in time."""

    code = "runtime_error"


class SessionError(BridgeError):
    """A session operation is not possible (unknown session, wrong state, bad phone number)."""

    code = "session_error"


class SessionNotFound(SessionError):
    code = "session_not_found"


class SessionStateError(SessionError):
    """The session is in a state where this operation makes no sense (e.g. send while not open)."""

    code = "session_state"


class AlertError(BridgeError):
    """An alert could not be delivered to a sink (it is retried; this is only logged)."""

    code = "alert_error"
