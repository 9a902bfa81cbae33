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

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.monitor.audit import AuditGuard, install
from tests.monitor.telegram_receiver import TelegramReceiver, start_receiver

GUARD = install()


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

