"""The incident record and its journal: JSON lines under `AUTH_ROOT/.bridge/incidents/`.

`Incident` is the one record of an incident, whoever opened it (the monitor's repairs, the
sessions' storage faults and refused starts; `bridge.sessions.incident_desk.IncidentDesk` keeps
the open ones). The journal holds a line when an incident opens, a line each time the monitor
records what it did about it, and a line when it ends (`resolved_at`), all with the same `id`: the
last line of an id is its latest state.

Why a file as well as the `incident` event: events live in memory, and the question "what
happened to tenant X's creds last Tuesday and what did the monitor do" must survive restarts.
The journal only ever grows: lines are appended (O_APPEND) and fsynced through the store's one
writer (`durable.open_for_append` / `append_bytes` / `sync_data`; a new month's file gets its
folder entry fsynced), one file per month, and nothing here rewrites, truncates or removes a file.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bridge.store import durable

INCIDENTS_DIR = "incidents"


class Incident(msgspec.Struct, kw_only=True):
    """Damage the monitor found and what it did about it.

    `action` is the plan carried out (`put_back_creds`, `put_back_keys`, `restore_folder`,
    `stop_session`, `nothing`); `restored` says the folder holds this session's own account again.
    `sessions` names every session the incident is about (both halves of a swap). `warning` is what
    the repair could not give back; `next_step` what the operator should do. `joined` says a
    session had opened this incident (and alerted) first: the monitor raised no alert of its own.
    `resolved_at` / `resolution`: when and how it ended (None while open).
    """

    id: str
    session: str
    kind: str
    detail: str
    detected_at: float
    severity: str = "critical"
    action: str = "nothing"
    sessions: list[str] = msgspec.field(default_factory=list)
    restored: bool = False
    snapshot: str | None = None
    creds_source: str | None = None
    keys_put_back: int = 0
    keys_before: int | None = None
    keys_after: int | None = None
    pre_restore_snapshot: str | None = None
    replaced_path: str | None = None
    stopped: list[str] = msgspec.field(default_factory=list)
    session_restarted: bool = False
    seconds_to_restore: float | None = None
    warning: str | None = None
    error: str | None = None
    next_step: str = ""
    joined: bool = False
    resolved_at: float | None = None
    resolution: str = ""

    def as_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def new_incident_id() -> str:
    """Time-sortable and unique: `20261125T120102Z-a1b2c3`."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class IncidentLog:
    """Append-only JSON-lines journal; safe to call from worker threads."""

    def __init__(self, bridge_dir: Path) -> None:
        self.folder = Path(bridge_dir) / INCIDENTS_DIR
        self._lock = threading.Lock()

    def path_for(self, ts: float) -> Path:
        return self.folder / f"incidents-{datetime.fromtimestamp(ts, UTC):%Y-%m}.jsonl"

    def append(self, incident: Incident) -> Path:
        """Durably append one line; returns the file written. Raises `StoreError` (classified:
        full, read-only, permission, I/O) when it cannot."""
        line = msgspec.json.encode(incident) + b"\n"
        path = self.path_for(incident.detected_at or time.time())
        with self._lock:
            durable.make_dirs(self.folder)
            try:
                fd = durable.open_for_append(path)
            except OSError as exc:
                raise durable.explain_os_error(exc, path, "opening the incident journal") from exc
            try:
                durable.append_bytes(fd, line)
                durable.sync_data(fd)
            except OSError as exc:
                raise durable.explain_os_error(exc, path, "appending to the incident journal") from exc
            finally:
                os.close(fd)
        return path

    def read_all(self) -> list[Incident]:
        """Every incident recorded, oldest first (a torn last line from a crash is skipped)."""
        found: list[Incident] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("incidents-*.jsonl")):
            for raw in path.read_bytes().splitlines():
                try:
                    found.append(msgspec.json.decode(raw, type=Incident))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
        return found

    def latest(self) -> list[Incident]:
        """Each incident once, in its latest recorded state, in the order they opened."""
        found: dict[str, Incident] = {}
        for incident in self.read_all():
            found[incident.id] = incident
        return list(found.values())
