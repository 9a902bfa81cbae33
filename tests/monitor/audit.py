"""The no-delete audit hook of the monitor's suite (see conftest.py), importable on its own so a
subprocess running the CLI can install the same guard (tests/monitor/audited_cli.py).

Audit hooks cannot be removed once added, so `install()` adds the hook once per process and the
hook consults the module-level `GUARD`: only paths under `GUARD.roots` are protected.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

_DELETE_EVENTS = {"os.remove", "os.rmdir", "shutil.rmtree"}


@dataclass
class AuditGuard:
    roots: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    local: threading.local = field(default_factory=threading.local)

    def covers(self, path: str) -> bool:
        """Guarded: everything under a root except advisory lock files (`.bridge/locks/`), which
        hold only a pid and are rewritten in place by design (bridge/store/lock.py), and the
        session journals (`.bridge/journal/`), whose segments are deleted once a checkpoint made
        every record durable in the files, and whose torn tail is cut (bridge/store/journal.py)."""
        if f"{os.sep}.bridge{os.sep}locks{os.sep}" in path or f"{os.sep}.bridge{os.sep}journal{os.sep}" in path:
            return False
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


_installed = False


def install() -> AuditGuard:
    """Add the hook to this process (once) and return the guard that arms it."""
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
    return GUARD
