"""Request and response bodies of the HTTP API, as pydantic models.

These models do double duty: they validate what clients send and they are the source of the
OpenAPI document (`bridge.api.openapi`), so the published schema cannot drift from what the
server accepts and returns.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import yarl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
    reason: str = Field("", description="Why the session is in its state (e.g. storage_full, identity_mismatch)")
    incident: str | None = Field(None, description="The incident (already alerted) the current state belongs to")


class SessionList(BaseModel):
    sessions: list[SessionView]


class PairingCodeRequest(Strict):
    phone: str = Field(pattern=PHONE_PATTERN, description="Phone number in international format, digits only")


class PairingCodeView(BaseModel):
    code: str = Field(description="Code to type on the phone: Linked devices > Link with phone number")


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


WEBHOOK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
URL_PATTERN = r"^https?://[^\s]+$"


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host that the HTTP client can reach (else 422)."""
    try:
        parsed = yarl.URL(value)
    except (ValueError, TypeError):
        raise ValueError("not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.is_absolute() or not parsed.raw_host:
        raise ValueError("must be an absolute http or https URL with a host")
    try:
        ipaddress.ip_address(parsed.raw_host)
    except ValueError:
        if parsed.raw_host.replace(".", "").isdigit() or not _HOST.fullmatch(parsed.raw_host):
            raise ValueError(f"host {parsed.raw_host!r} is neither a DNS name nor an IP address") from None
    return value


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class WebhookConfig(Strict):
    """The per-session webhook of the first API (`PUT /sessions/{id}/webhook`)."""

    url: HttpUrl = Field(pattern=URL_PATTERN, max_length=2048, description="Where events are POSTed (http or https)")
    secret: str = Field(min_length=16, max_length=256, description="Signing secret (whsec_<base64> or any text)")
    events: list[str] = Field(default_factory=list, max_length=64,
                              description="Event kinds to deliver; empty means all")


class WebhookSpec(Strict):
    """A webhook: global (no `sessions`) or limited to some sessions, filtered by event kind."""

    url: HttpUrl = Field(pattern=URL_PATTERN, max_length=2048, description="Where events are POSTed (http or https)")
    secret: str | None = Field(
        None, min_length=16, max_length=256,
        description="Signing secret (whsec_<base64> as Standard Webhooks, or any text); omitted: one is made "
        "and returned once",
    )
    events: list[str] = Field(default_factory=list, max_length=64,
                              description="Event kinds to deliver (e.g. message, session.state); empty means all")
    sessions: list[str] = Field(default_factory=list, max_length=1000,
                                description="Session ids to deliver events of; empty means every session")


class CreateWebhook(WebhookSpec):
    id: str | None = Field(None, pattern=WEBHOOK_ID_PATTERN, description="Webhook id; omitted: one is made")


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    sessions: list[str] = Field(default_factory=list)
    created_at: float = 0.0
    secret: str | None = Field(None, description="Only in the answer that created the secret")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class DeliveryView(BaseModel):
    seq: int = Field(description="The event's sequence number (its SSE id)")
    webhook_id: str = Field(description="The `webhook-id` header value: stable across retries")
    session: str | None
    kind: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: float
    next_at: float = Field(description="When a pending delivery is tried next")
    last_error: str
    done_at: float | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


class DeliveryQuery(Strict):
    state: Literal["pending", "delivered", "failed"] | None = Field(None, description="Only deliveries in this state")
    after: int = Field(0, ge=0, description="Only events with a larger seq (for paging)")
    limit: int = Field(100, ge=1, le=1000)


class Redeliver(Strict):
    seqs: list[int] | None = Field(None, max_length=10000,
                                   description="Events to deliver again; omitted: every failed delivery")


class Redelivered(BaseModel):
    requeued: int = Field(description="Failed deliveries put back in the queue")


class StorageFaultView(BaseModel):
    code: str = Field(description="storage_full, storage_read_only, storage_permission or storage_io")
    message: str = Field(description="What broke and how to fix it")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    sessions: dict[str, int] = Field(description="Number of sessions per state, plus total")
    event_log: Literal["ok", "failing"] = Field(
        "ok", description="failing: events wait in memory because the event log cannot write (see the alert)"
    )
    storage_fault: StorageFaultView | None = Field(
        None, description="Set while the auth root refuses writes: sessions stay stopped until it works again")


class Ready(BaseModel):
    ready: bool


class EventView(BaseModel):
    """The `data:` of one SSE message (and the body of a webhook delivery)."""

    seq: int
    ts: float
    session: str | None
    kind: str
    data: dict[str, Any]
