"""Request and response bodies of the HTTP API, as pydantic models.

These models do double duty: they validate what clients send and they are the source of the
OpenAPI document (`bridge.api.openapi`), so the published schema cannot drift from what the
server accepts and returns.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PHONE_PATTERN = r"^\+?[1-9][0-9]{6,14}$"  # as bridge.sessions.phone.validate_phone


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. session_not_found")
    message: str = Field(description="What happened and what to do next")


class ErrorBody(BaseModel):
    """Every error response of the API has this shape."""

    error: ErrorDetail


class CreateSession(Strict):
    id: str = Field(pattern=SESSION_ID_PATTERN, description="Session id; also the auth folder name")
    login: Literal["qr", "pairing_code"] = Field("qr", description="How the session logs in the first time")
    phone: str | None = Field(None, pattern=PHONE_PATTERN, description="Phone number (digits), for pairing_code")
    start: bool = Field(True, description="Start the session right after creating it")


class SessionView(BaseModel):
    id: str
    state: str = Field(description="stopped, starting, qr, pairing, connecting, open, reconnecting, ...")
    login: str | None = None
    phone: str | None = None
    since: float | None = Field(None, description="Unix time the session entered its current state")
    last_disconnect_reason: str | None = None
    restarts: int = 0
    me: str | None = Field(None, description="The account's jid once paired")
    archived: bool = Field(False, description="Archived by DELETE: stopped, files kept on disk")


class SessionList(BaseModel):
    sessions: list[SessionView]


class PairingCodeRequest(Strict):
    phone: str = Field(pattern=PHONE_PATTERN, description="Phone number in international format, digits only")


class PairingCodeView(BaseModel):
    code: str = Field(description="Code to type on the phone: Linked devices > Link with phone number")


class SendMessage(Strict):
    to: str = Field(min_length=1, max_length=128, description="Phone number or jid")
    text: str = Field(min_length=1, max_length=65536)


class MessageSent(BaseModel):
    id: str = Field(description="WhatsApp message id, returned after the server acknowledged it")
    persisted: bool = Field(True, description="false: the message went out but a storage fault kept its "
                                              "encryption state from being stored; do not send it again")
    server_ack: bool = Field(True, description="the WhatsApp server confirmed receipt")


class CreateSnapshot(Strict):
    reason: str = Field("api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class FileEntryView(BaseModel):
    name: str
    size: int
    sha256: str


class SnapshotView(BaseModel):
    id: str
    session: str
    created_at: float
    reason: str
    registered: bool
    files: list[FileEntryView]


class SnapshotList(BaseModel):
    snapshots: list[SnapshotView]


class VerifyView(BaseModel):
    ok: bool
    checked: int = Field(0, description="Files re-hashed")
    problems: list[str] = Field(default_factory=list)


class WebhookConfig(Strict):
    url: str = Field(pattern=r"^https?://", max_length=2048, description="Where events are POSTed")
    secret: str = Field(min_length=16, max_length=256, description="HMAC-SHA256 key for X-Bridge-Signature")
    events: list[str] = Field(default_factory=list, description="Event kinds to deliver; empty means all")


class WebhookView(BaseModel):
    url: str
    events: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    sessions: dict[str, int] = Field(description="Number of sessions per state, plus total")


class Ready(BaseModel):
    ready: bool


class EventView(BaseModel):
    """The `data:` of one SSE message (and the body of a webhook delivery)."""

    seq: int
    ts: float
    session: str | None
    kind: str
    data: dict[str, Any]
