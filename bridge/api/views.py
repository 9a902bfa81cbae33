"""Conversions from the session and store layers' objects to the API's response models.

Why a separate module: the API's models are its published contract; `SessionInfo`,
`SnapshotManifest` and `VerifyReport` belong to other parts and may grow fields the API does not
show. This is the one place that maps one to the other.
"""

from __future__ import annotations

from bridge.api.models import FileEntryView, SessionView, SnapshotView, VerifyView
from bridge.sessions.session import SessionInfo
from bridge.sessions.state import SessionState
from bridge.store.snapshots import SnapshotManifest, VerifyReport


def session_view(info: SessionInfo) -> SessionView:
    """Public view of a session (state, login, phone, since, last disconnect reason, restarts)."""
    return SessionView(
        id=info.id,
        state=info.state,
        login=info.login,
        phone=info.phone,
        since=info.since,
        last_disconnect_reason=info.last_disconnect_reason,
        restarts=info.restarts,
        me=info.me,
        archived=info.archived,
        reason=info.reason,
        incident=info.incident,
    )


def state_of(info: SessionInfo) -> SessionState:
    """The session's state as the one state type."""
    return SessionState(info.state)


def snapshot_view(manifest: SnapshotManifest) -> SnapshotView:
    return SnapshotView(
        id=manifest.id,
        session=manifest.session,
        created_at=manifest.created_at,
        reason=manifest.reason,
        registered=manifest.registered,
        files=[FileEntryView(name=f.name, size=f.size, sha256=f.sha256) for f in manifest.files],
    )


def verify_view(report: VerifyReport) -> VerifyView:
    problems = [f"{p.kind} {p.path}: {p.detail}".strip() for p in report.problems]
    return VerifyView(ok=report.ok, checked=report.objects_checked, problems=problems)
