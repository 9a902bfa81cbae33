"""One small error hierarchy, rooted at `BridgeError`, and the one table of error codes.

Every message is written for an operator: it says what happened, to which path or session, and
what to do next. `code` is a stable machine-readable string (an `ErrorCode`) used by the HTTP API,
the CLI's `--json` output and the IPC protocol (`{"error": {"code": ..., "message": ...}}`).

Why one table (`FAILURES`): the same failure must look the same everywhere. The API answers
`http_status(exc)` and the CLI exits with `exit_code(exc)`, both read from the row of the error's
code; a code not in the table (e.g. one the Node runtime invented) falls back to the row of the
nearest error class that has one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class ErrorCode(enum.StrEnum):
    """Every error code the bridge emits. Append new ones here (and a row in `FAILURES`)."""

    # generic
    BRIDGE_ERROR = "bridge_error"
    INTERNAL = "internal"
    CONFIG_ERROR = "config_error"
    OS_ERROR = "os_error"
    # request shape (HTTP)
    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAVAILABLE = "unavailable"
    HTTP_ERROR = "http_error"
    # store and storage
    STORE_ERROR = "store_error"
    CREDS_CORRUPT = "creds_corrupt"
    HOSTILE_NAME = "hostile_name"
    SESSION_LOCKED = "session_locked"
    ROOT_LOCKED = "root_locked"
    IDENTITY_MISMATCH = "identity_mismatch"
    IDENTITY_UNREADABLE = "identity_unreadable"
    JOURNAL_CORRUPT = "journal_corrupt"
    JOURNAL_BUSY = "journal_busy"
    SESSION_FOLDER_MISSING = "session_folder_missing"
    ADOPT_REFUSED = "adopt_refused"
    STORAGE_FULL = "storage_full"
    STORAGE_READ_ONLY = "storage_read_only"
    STORAGE_PERMISSION = "storage_permission"
    STORAGE_IO = "storage_io"
    # snapshots and backups
    SNAPSHOT_ERROR = "snapshot_error"
    SNAPSHOT_NOT_FOUND = "snapshot_not_found"
    SNAPSHOT_AMBIGUOUS = "snapshot_ambiguous"
    BACKUP_INVALID = "backup_invalid"
    BAD_POLICY = "bad_policy"
    RESTORE_LOSES_KEYS = "restore_loses_keys"
    # Node runtime and IPC
    PROTOCOL_ERROR = "protocol_error"
    RUNTIME_ERROR = "runtime_error"
    RUNTIME_TIMEOUT = "runtime_timeout"
    RUNTIME_GONE = "runtime_gone"
    NO_SERVER_ACK = "no_server_ack"
    SERVER_NACK = "server_nack"
    # sessions
    SESSION_ERROR = "session_error"
    SESSION_NOT_FOUND = "session_not_found"
    SESSION_STATE = "session_state"
    SESSION_EXISTS = "session_exists"
    INVALID_LOGIN = "invalid_login"
    INVALID_PHONE = "invalid_phone"
    INVALID_RECIPIENT = "invalid_recipient"
    NO_QR = "no_qr"
    # messages
    MESSAGE_NOT_FOUND = "message_not_found"
    MESSAGE_REFUSED = "message_refused"
    NOT_ON_WHATSAPP = "not_on_whatsapp"
    CONTACT_INFO_HIDDEN = "contact_info_hidden"
    # groups
    GROUP_NOT_FOUND = "group_not_found"
    NOT_GROUP_MEMBER = "not_group_member"
    NOT_GROUP_ADMIN = "not_group_admin"
    NOT_IN_GROUP = "participant_not_in_group"
    INVITE_NOT_FOUND = "invite_not_found"
    GROUP_REFUSED = "group_refused"
    # alerts, events, webhooks
    ALERT_ERROR = "alert_error"
    UNKNOWN_EVENT_KIND = "unknown_event_kind"
    DELIVERY_FAILED = "delivery_failed"
    NOT_READY = "not_ready"
    EVENT_LOG_UNAVAILABLE = "event_log_unavailable"
    WEBHOOK_NOT_FOUND = "webhook_not_found"
    # media
    MEDIA_TOO_LARGE = "media_too_large"
    MEDIA_TYPE_MISMATCH = "media_type_mismatch"
    MEDIA_EMPTY = "media_empty"
    MEDIA_URL_REFUSED = "media_url_refused"
    MEDIA_FETCH_FAILED = "media_fetch_failed"
    MEDIA_CORRUPT = "media_corrupt"
    MEDIA_GONE = "media_gone"
    NOT_MEDIA = "not_media"
    # cluster
    LEASE_LOST = "lease_lost"
    CLUSTER_UNAVAILABLE = "cluster_unavailable"


class ExitCode(enum.IntEnum):
    """Exit codes of the operator commands (docs/operations.md)."""

    OK = 0
    CHECK_FAILED = 1  # missing/corrupt objects, tampered backup, refused restore
    USAGE = 2  # bad option, invalid id, a keep-policy that keeps nothing
    REFUSED = 3  # refused for safety: locked, recently written, id already used, foreign identity
    NOT_FOUND = 4  # no such session folder, snapshot or archive
    ERROR = 5  # any other error (disk full, permissions); the message says what to fix


@dataclass(frozen=True)
class Failure:
    """How one error code shows: the HTTP status and the CLI exit code."""

    status: int
    exit: ExitCode


_E = ErrorCode
_X = ExitCode
FAILURES: Final[dict[ErrorCode, Failure]] = {
    _E.BRIDGE_ERROR: Failure(500, _X.ERROR),
    _E.INTERNAL: Failure(500, _X.ERROR),
    _E.CONFIG_ERROR: Failure(500, _X.ERROR),
    _E.OS_ERROR: Failure(500, _X.ERROR),
    _E.BAD_REQUEST: Failure(400, _X.USAGE),
    _E.INVALID_JSON: Failure(400, _X.USAGE),
    _E.VALIDATION_ERROR: Failure(422, _X.USAGE),
    _E.UNAUTHORIZED: Failure(401, _X.USAGE),
    _E.FORBIDDEN: Failure(403, _X.REFUSED),
    _E.NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.METHOD_NOT_ALLOWED: Failure(405, _X.USAGE),
    _E.CONFLICT: Failure(409, _X.REFUSED),
    _E.PAYLOAD_TOO_LARGE: Failure(413, _X.USAGE),
    _E.UNSUPPORTED_MEDIA_TYPE: Failure(415, _X.USAGE),
    _E.UNAVAILABLE: Failure(503, _X.ERROR),
    _E.HTTP_ERROR: Failure(400, _X.USAGE),
    _E.STORE_ERROR: Failure(500, _X.ERROR),
    _E.CREDS_CORRUPT: Failure(409, _X.ERROR),
    _E.HOSTILE_NAME: Failure(400, _X.USAGE),
    _E.SESSION_LOCKED: Failure(409, _X.REFUSED),
    _E.ROOT_LOCKED: Failure(409, _X.REFUSED),
    _E.IDENTITY_MISMATCH: Failure(409, _X.REFUSED),
    _E.IDENTITY_UNREADABLE: Failure(500, _X.ERROR),
    _E.JOURNAL_CORRUPT: Failure(500, _X.CHECK_FAILED),
    _E.JOURNAL_BUSY: Failure(409, _X.REFUSED),
    _E.SESSION_FOLDER_MISSING: Failure(404, _X.NOT_FOUND),
    _E.ADOPT_REFUSED: Failure(409, _X.REFUSED),
    _E.STORAGE_FULL: Failure(507, _X.ERROR),
    _E.STORAGE_READ_ONLY: Failure(503, _X.ERROR),
    _E.STORAGE_PERMISSION: Failure(503, _X.ERROR),
    _E.STORAGE_IO: Failure(503, _X.ERROR),
    _E.SNAPSHOT_ERROR: Failure(409, _X.CHECK_FAILED),
    _E.SNAPSHOT_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.SNAPSHOT_AMBIGUOUS: Failure(400, _X.USAGE),
    _E.BACKUP_INVALID: Failure(409, _X.CHECK_FAILED),
    _E.BAD_POLICY: Failure(400, _X.USAGE),
    _E.RESTORE_LOSES_KEYS: Failure(409, _X.REFUSED),
    _E.PROTOCOL_ERROR: Failure(502, _X.ERROR),
    _E.RUNTIME_ERROR: Failure(503, _X.ERROR),
    _E.RUNTIME_TIMEOUT: Failure(503, _X.ERROR),
    _E.RUNTIME_GONE: Failure(503, _X.ERROR),
    _E.NO_SERVER_ACK: Failure(503, _X.ERROR),
    _E.SERVER_NACK: Failure(503, _X.ERROR),
    _E.SESSION_ERROR: Failure(400, _X.USAGE),
    _E.SESSION_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.SESSION_STATE: Failure(409, _X.REFUSED),
    _E.SESSION_EXISTS: Failure(409, _X.REFUSED),
    _E.INVALID_LOGIN: Failure(400, _X.USAGE),
    _E.INVALID_PHONE: Failure(400, _X.USAGE),
    _E.INVALID_RECIPIENT: Failure(400, _X.USAGE),
    _E.NO_QR: Failure(404, _X.NOT_FOUND),
    _E.MESSAGE_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.MESSAGE_REFUSED: Failure(409, _X.REFUSED),
    _E.NOT_ON_WHATSAPP: Failure(404, _X.NOT_FOUND),
    _E.CONTACT_INFO_HIDDEN: Failure(404, _X.NOT_FOUND),
    _E.GROUP_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.NOT_GROUP_MEMBER: Failure(403, _X.REFUSED),
    _E.NOT_GROUP_ADMIN: Failure(403, _X.REFUSED),
    _E.NOT_IN_GROUP: Failure(404, _X.NOT_FOUND),
    _E.INVITE_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.GROUP_REFUSED: Failure(409, _X.REFUSED),
    _E.ALERT_ERROR: Failure(500, _X.ERROR),
    _E.UNKNOWN_EVENT_KIND: Failure(400, _X.USAGE),
    _E.DELIVERY_FAILED: Failure(502, _X.ERROR),
    _E.NOT_READY: Failure(503, _X.ERROR),
    _E.EVENT_LOG_UNAVAILABLE: Failure(503, _X.ERROR),
    _E.WEBHOOK_NOT_FOUND: Failure(404, _X.NOT_FOUND),
    _E.MEDIA_TOO_LARGE: Failure(413, _X.USAGE),
    _E.MEDIA_TYPE_MISMATCH: Failure(415, _X.USAGE),
    _E.MEDIA_EMPTY: Failure(422, _X.USAGE),
    _E.MEDIA_URL_REFUSED: Failure(400, _X.USAGE),
    _E.MEDIA_FETCH_FAILED: Failure(502, _X.ERROR),
    _E.MEDIA_CORRUPT: Failure(502, _X.ERROR),
    _E.MEDIA_GONE: Failure(410, _X.NOT_FOUND),
    _E.NOT_MEDIA: Failure(404, _X.NOT_FOUND),
    _E.LEASE_LOST: Failure(409, _X.REFUSED),
    _E.CLUSTER_UNAVAILABLE: Failure(503, _X.ERROR),
}


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    code: str = ErrorCode.BRIDGE_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


def _row(code: str) -> Failure | None:
    try:
        return FAILURES.get(ErrorCode(code))
    except ValueError:
        return None


def failure(exc: BridgeError) -> Failure:
    """The row of `exc`'s code, else of the nearest class in its hierarchy that has one."""
    found = _row(exc.code)
    if found is not None:
        return found
    for cls in type(exc).__mro__:
        code = getattr(cls, "code", None)
        row = _row(code) if isinstance(code, str) else None
        if row is not None:
            return row
    return FAILURES[ErrorCode.BRIDGE_ERROR]


def http_status(exc: BridgeError) -> int:
    """The HTTP status the API answers for `exc`."""
    return failure(exc).status


def exit_code(exc: BridgeError) -> ExitCode:
    """The exit code an operator command ends with for `exc`."""
    return failure(exc).exit


class ConfigError(BridgeError):
    """Settings are missing or contradict each other; the bridge refuses to start."""

    code: str = ErrorCode.CONFIG_ERROR


class StoreError(BridgeError):
    """The auth store refused or failed an operation; no file was left half-written."""

    code: str = ErrorCode.STORE_ERROR


class CredsCorruptError(StoreError):
    """creds.json exists but cannot be read or parsed: restore it, never start fresh over it."""

    code: str = ErrorCode.CREDS_CORRUPT


class HostileNameError(StoreError):
    """A key type or id would escape the session folder or is otherwise unsafe as a file name."""

    code: str = ErrorCode.HOSTILE_NAME


class SnapshotError(StoreError):
    """A snapshot, backup or restore failed verification or cannot be done now."""

    code: str = ErrorCode.SNAPSHOT_ERROR


class ProtocolError(BridgeError):
    """An IPC line broke the protocol (too long, undecodable, unknown kind/op, wrong session)."""

    code: str = ErrorCode.PROTOCOL_ERROR


class NodeRuntimeError(BridgeError):
    """The Node runtime could not be started, crashed, or did not answer in time."""

    code: str = ErrorCode.RUNTIME_ERROR


class SessionError(BridgeError):
    """A session operation is not possible (unknown session, wrong state, bad phone number)."""

    code: str = ErrorCode.SESSION_ERROR


class SessionNotFound(SessionError):
    code: str = ErrorCode.SESSION_NOT_FOUND


class SessionStateError(SessionError):
    """The session is in a state where this operation makes no sense (e.g. send while not open)."""

    code: str = ErrorCode.SESSION_STATE


class AlertError(BridgeError):
    """An alert could not be delivered to a sink (it is retried; this is only logged)."""

    code: str = ErrorCode.ALERT_ERROR
