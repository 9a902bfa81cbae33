"""Conversions from the session and store layers' objects to the API's response models.

Why a separate module: `SessionInfo` and `SnapshotManifest` belong to other parts and may be
dataclasses, msgspec Structs or dicts; this is the one place that knows how to read them.
"""

from __future__ import annotations

import enum
from typing import Any

from bridge.api.models import FileEntryView, SessionView, SnapshotView, VerifyView


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def session_view(info: Any) -> SessionView:
    """Public view of a session (state, login, phone, since, last disconnect reason, restarts)."""
    reason = _field(info, "last_disconnect_reason", _field(info, "last_disconnect"))
    return SessionView(
        id=str(_field(info, "id", _field(info, "session_id"))),
        state=_text(_field(info, "state")) or "unknown",
        login=_text(_field(info, "login")),
        phone=_text(_field(info, "phone")),
        since=_field(info, "since"),
        last_disconnect_reason=_text(reason),
        restarts=int(_field(info, "restarts", 0) or 0),
        me=_text(_field(info, "me")),
        archived=bool(_field(info, "archived", False)),
    )


def state_of(info: Any) -> str:
    """The session's state as a plain string."""
    return _text(_field(info, "state")) or "unknown"


def snapshot_view(manifest: Any) -> SnapshotView:
    files = [
        FileEntryView(name=str(_field(f, "name")), size=int(_field(f, "size")), sha256=str(_field(f, "sha256")))
        for f in _field(manifest, "files", []) or []
    ]
    return SnapshotView(
        id=str(_field(manifest, "id")),
        session=str(_field(manifest, "session")),
        created_at=float(_field(manifest, "created_at", 0.0)),
        reason=str(_field(manifest, "reason", "")),
        registered=bool(_field(manifest, "registered", False)),
        files=files,
    )


def verify_view(report: Any) -> VerifyView:
    problems = [
        f"{_field(p, 'kind', 'problem')} {_field(p, 'path', '')}: {_field(p, 'detail', '')}".strip()
        for p in (_field(report, "problems", None) or [])
    ]
    ok = _field(report, "ok", None)
    checked = _field(report, "objects_checked", _field(report, "checked", 0))
    return VerifyView(ok=bool(ok) if ok is not None else not problems, checked=int(checked or 0), problems=problems)
