"""Promises of issue 12 that do not hold yet, one reason each, with the root cause in the code.

Every failing fault test is marked `xfail(reason=..., strict=True)` with one of these, so the suite
stays green while it says exactly what is still broken, and turns red the moment a fix lands
(strict: an unexpected pass fails) so the mark gets removed.
"""

from __future__ import annotations

import fnmatch
import itertools
from typing import Any

import pytest

SOCKET_ON_BROKEN_STORAGE = (
    "issue 12 storage faults: a session whose keys cannot be stored keeps its socket: auth.get/auth.set "
    "fail (bridge/runtime/auth_handler.py answers the store error to Node, storage_permission / "
    "storage_read_only), Baileys logs 'error in handling message' and goes on, and bridge/sessions/session.py "
    "never hears of it; a message received meanwhile never reaches the event stream, not even after storage "
    "is back"
)
NO_STORAGE_INCIDENT = (
    "issue 12 storage faults: a read-only or full root raises no incident: the monitor only reports "
    "snapshot_failed (warning, bridge/monitor/watcher.py:564) and the session keeps running on state it cannot "
    "save (" + SOCKET_ON_BROKEN_STORAGE.split(": ", 1)[1] + ")"
)

def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, strict=True)


def matrix(axes: dict[str, list[Any]], known: dict[str, str]) -> list[Any]:
    """`pytest.param`s for every combination of `axes` (ids `a-b-c`); a combination whose id
    matches a pattern of `known` (fnmatch, first match wins) is marked xfail with that reason."""
    params = []
    for combo in itertools.product(*axes.values()):
        case = "-".join(str(value) for value in combo)
        reason = next((why for pattern, why in known.items() if fnmatch.fnmatchcase(case, pattern)), None)
        params.append(pytest.param(*combo, id=case, marks=[xfail(reason)] if reason else []))
    return params
