"""What one doctor check found, and the exit code a list of findings adds up to.

A check never raises for a problem it was asked to look for: it returns an `error` or `warning`
result whose `fix` tells the operator what to do. `skipped` says why a check could not run (not
configured, not reachable); it does not fail the run, so a machine without Telegram or without
internet can still be all green.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import msgspec


class Status(enum.StrEnum):
    """Outcome of one check, in order of severity."""

    OK = "ok"
    SKIPPED = "skipped"
    WARNING = "warning"
    ERROR = "error"


#: `python -m bridge doctor` exits with the code of its worst finding.
EXIT_CODES: dict[Status, int] = {Status.OK: 0, Status.SKIPPED: 0, Status.WARNING: 1, Status.ERROR: 2}


class CheckResult(msgspec.Struct):
    """One finding: `summary` says what was seen, `fix` what to do about it (empty when fine)."""

    check: str
    status: Status
    summary: str
    fix: str = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)


def ok(check: str, summary: str, **details: Any) -> CheckResult:
    """A check that passed."""
    return CheckResult(check, Status.OK, summary, details=details)


def skipped(check: str, reason: str, **details: Any) -> CheckResult:
    """A check that could not run; `reason` says why."""
    return CheckResult(check, Status.SKIPPED, reason, details=details)


def warning(check: str, summary: str, fix: str, **details: Any) -> CheckResult:
    """Works now, but will hurt: the bridge runs, the operator should act."""
    return CheckResult(check, Status.WARNING, summary, fix, details)


def error(check: str, summary: str, fix: str, **details: Any) -> CheckResult:
    """The bridge cannot run, or cannot keep its promise, until this is fixed."""
    return CheckResult(check, Status.ERROR, summary, fix, details)


def worst(results: Iterable[CheckResult]) -> Status:
    """The verdict: the most severe status among `results`; OK when all passed or were skipped."""
    order = list(Status)
    found = max((r.status for r in results), key=order.index, default=Status.OK)
    return Status.OK if found is Status.SKIPPED else found


def exit_code(results: Iterable[CheckResult]) -> int:
    """0 all fine (or skipped), 1 at least one warning, 2 at least one error."""
    return EXIT_CODES[worst(results)]
