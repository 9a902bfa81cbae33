"""`IncidentDesk`: exactly one critical alert per incident, however many sessions it touches.

A full disk stops every running session at once, and each keeps probing until space returns; two
swapped folders refuse two sessions. Each of those is one thing that went wrong, so the operator
gets one alert for it. Sessions ask the desk to open (or join) the incident of a cause (`key`):
the first asker raises the alert, the others join and get the same incident id. The id travels
with every follow-on state change of the sessions involved (`state` events carry it as
`incident`), so nothing downstream (the monitor's standing-condition checks included) alerts for
the same cause again. An incident ends when every session in it is well again (`leave`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from bridge.events import EventBus
from bridge.monitor.incidents import new_incident_id

log = logging.getLogger(__name__)


@dataclass
class OpenIncident:
    """One incident the desk has alerted for: its id, alert kind, and the sessions still in it."""

    id: str
    kind: str
    message: str
    sessions: set[str | None] = field(default_factory=set)


class IncidentDesk:
    """See the module docstring. Lives on the event loop (no locking)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._open: dict[Hashable, OpenIncident] = {}

    def join(self, key: Hashable, session: str | None, kind: str, message: str, **extra: Any) -> str:
        """The id of the incident of `key`, opening it (one critical alert) if it is not open."""
        incident = self._open.get(key)
        if incident is None:
            incident = OpenIncident(new_incident_id(), kind, message)
            self._open[key] = incident
            self.bus.alert(session, kind, "critical", message, incident=incident.id, **extra)
        elif session not in incident.sessions:
            log.warning("session %s joins incident %s (%s): %s", session, incident.id, kind, message)
        incident.sessions.add(session)
        return incident.id

    def leave(self, key: Hashable, session: str | None) -> None:
        """`session` is well again; the incident ends when nobody is left in it."""
        incident = self._open.get(key)
        if incident is None:
            return
        incident.sessions.discard(session)
        if not incident.sessions:
            del self._open[key]
            log.info("incident %s (%s) is over", incident.id, incident.kind)

    def get(self, key: Hashable) -> OpenIncident | None:
        """The open incident of `key`, if any."""
        return self._open.get(key)
