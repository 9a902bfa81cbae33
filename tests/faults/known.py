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

STORAGE_LOSES_MESSAGES = (
    "issue 12 storage faults (chmod 000 on the folder, a full disk, an ext4 root gone read-only): the session is "
    "suspended, the fault is one incident with one critical alert whoever saw it first and one resolved notice "
    "(bridge/sessions/incident_desk.py), and the session resumes once storage is back, but a message a contact "
    "sent while storage was broken is lost: Baileys' decrypt transaction rolls back on the failed auth.set/auth.get "
    "('transaction failed, rolling back', storage_full / storage_read_only / storage_permission) after the message "
    "was taken off the socket and acked, and the simulator's contacts do not send it again (helper `redelivery`: "
    "keep-until-acked redelivery in the simulator, and Node ending the socket before Baileys acks such a message)"
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
