"""Promises of issue 12 that do not hold yet, one reason each, with the root cause in the code.

None is known today: every constant that stood here was removed with the fix that made its tests
pass. The mechanism stays for the next one found. Every failing fault test is marked
`xfail(reason=..., strict=True)` with one of these, so the suite stays green while it says exactly
what is still broken, and turns red the moment a fix lands (strict: an unexpected pass fails) so
the mark gets removed.
"""

from __future__ import annotations

import fnmatch
import itertools
from typing import Any

import pytest


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
