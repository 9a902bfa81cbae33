"""Advisory session locks: two processes can never hold one session; a dead holder frees it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import PROJECT_ROOT
from bridge.errors import HostileNameError
from bridge.store.lock import RepositoryLock, SessionLock, SessionLockedError

HOLDER = """
import sys
from pathlib import Path
from bridge.store.lock import RepositoryLock, SessionLock
kind, bridge_dir, session = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
lock = SessionLock(bridge_dir, session) if kind == "session" else RepositoryLock(bridge_dir, exclusive=True)
with lock:
    print("locked", flush=True)
    sys.stdin.read()
"""


def _start_holder(kind: str, bridge_dir: Path, session: str = "acme") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(bridge_dir), session],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_a_second_process_cannot_take_a_held_session_lock(tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    holder = _start_holder("session", tmp_path)
    holders.append(holder)

    with pytest.raises(SessionLockedError, match=f"pid {holder.pid}") as info:
        SessionLock(tmp_path, "acme").acquire()
    assert info.value.code == "session_locked"
    with SessionLock(tmp_path, "globex") as other:
        assert other.held

    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    with SessionLock(tmp_path, "acme") as lock:
        assert lock.held and lock.holder() is not None


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    holder = _start_holder("session", tmp_path)
    holders.append(holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    lock = SessionLock(tmp_path, "acme")
    lock.acquire(timeout=30)
    assert lock.held
    lock.release()
    lock.release()
    assert not lock.held
    assert lock.path.exists()


def test_waiting_for_a_lock_gives_up_with_the_holder_named(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    holder = _start_holder("repository", tmp_path)
    holders.append(holder)
    with pytest.raises(SessionLockedError, match="snapshot repository"):
        with RepositoryLock(tmp_path, exclusive=False, timeout=0.3):
            pass


def test_session_lock_names_are_validated(tmp_path: Path) -> None:
    with pytest.raises(HostileNameError):
        SessionLock(tmp_path, "../etc")
