"""Fixtures of the monitor's suite, and the audit hook that proves the monitor never deletes.

Every test in tests/monitor/ runs with its `tmp_path` (which holds the auth root) guarded: an audit
hook (`sys.addaudithook`) records and refuses `os.remove`/`os.unlink`, `os.rmdir`, `shutil.rmtree`
and `os.truncate` on anything below a guarded root, and opening an existing non-empty file there
with O_TRUNC. Audit hooks cannot be removed, so the hook is installed once and consults the
module-level `GUARD`; the autouse fixture arms it for the test and fails the test on any violation
(even one that monitor code caught and swallowed). Tests damage auth folders the way real
accidents do: from another process (`rm -rf`, `truncate`), which the hook does not see.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.monitor.telegram_receiver import TelegramReceiver, start_receiver

_DELETE_EVENTS = {"os.remove", "os.rmdir", "shutil.rmtree"}


@dataclass
class AuditGuard:
    roots: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    local: threading.local = field(default_factory=threading.local)

    def covers(self, path: str) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in self.roots)


GUARD = AuditGuard()


def _resolve(path: Any, dir_fd: Any = None) -> str | None:
    if isinstance(path, int):
        try:
            return os.readlink(f"/proc/self/fd/{path}")
        except OSError:
            return None
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    if dir_fd is not None and not os.path.isabs(text):
        try:
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        except OSError:
            return None
    return os.path.normpath(os.path.abspath(text))


def _violation(event: str, args: tuple[Any, ...]) -> str | None:
    if event in _DELETE_EVENTS:
        path = _resolve(args[0], args[1] if len(args) > 1 else None)
        return f"{event} {path}" if path and GUARD.covers(path) else None
    if event == "os.truncate":
        path = _resolve(args[0])
        return f"{event} {path}" if path and GUARD.covers(path) else None
    if event == "open" and len(args) >= 3 and isinstance(args[2], int) and args[2] & os.O_TRUNC:
        path = _resolve(args[0]) if not isinstance(args[0], int) else None
        if path and GUARD.covers(path) and os.path.isfile(path) and os.path.getsize(path) > 0:
            return f"open(O_TRUNC) {path}"
    return None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not GUARD.roots or getattr(GUARD.local, "busy", False):
        return
    GUARD.local.busy = True
    try:
        problem = _violation(event, args)
    finally:
        GUARD.local.busy = False
    if problem is not None:
        GUARD.violations.append(problem)
        raise PermissionError(f"audit hook: the monitor's suite forbids {problem}")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def audit_guard(tmp_path: Path) -> Iterator[AuditGuard]:
    """Arm the no-delete audit hook over this test's tmp_path; fail the test on any violation."""
    GUARD.violations.clear()
    GUARD.roots[:] = [str(tmp_path.resolve())]
    try:
        yield GUARD
    finally:
        GUARD.roots.clear()
    found = list(GUARD.violations)
    GUARD.violations.clear()
    if found:
        pytest.fail("deleted or truncated under the auth root: " + "; ".join(found))


@pytest.fixture
def auth_root(tmp_path: Path) -> Path:
    root = tmp_path / "auth"
    root.mkdir()
    return root


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramReceiver]:
    """A local Telegram Bot API receiver (see telegram_receiver.py)."""
    receiver, runner = await start_receiver()
    try:
        yield receiver
    finally:
        if receiver.hang is not None:
            receiver.hang.set()
        await runner.cleanup()

