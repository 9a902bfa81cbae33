"""Advisory session locks: two processes can never hold one session; a dead holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import PROJECT_ROOT
from bridge.errors import HostileNameError
from bridge.store.lock import RepositoryLock, RootLock, RootLockedError, SessionLock, SessionLockedError

HOLDER = """
import sys
from pathlib import Path
from bridge.store.lock import RepositoryLock, RootLock, SessionLock
kind, bridge_dir, session = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if kind == "root":
    lock = RootLock(bridge_dir)
elif kind == "session":
    lock = SessionLock(bridge_dir, session)
else:
    lock = RepositoryLock(bridge_dir, exclusive=True)
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


def test_one_auth_root_has_one_running_bridge(tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    bridge_dir = tmp_path / ".bridge"
    first = _start_holder("root", bridge_dir)
    holders.append(first)

    second = RootLock(bridge_dir)
    with pytest.raises(RootLockedError, match=f"pid {first.pid}") as info:
        second.acquire()
    assert info.value.code == "root_locked"
    assert "stop it first" in str(info.value) and "BRIDGE_AUTH_ROOT" in str(info.value)
    assert not second.held and second.holder() == first.pid
    with SessionLock(bridge_dir, "acme"):
        pass  # the root lock is its own lock: sessions are locked one by one as before

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    with RootLock(bridge_dir) as lock:
        assert lock.held and lock.holder() == os.getpid()
        with pytest.raises(RootLockedError):
            RootLock(bridge_dir).acquire()  # a second bridge in this same process is refused too
    assert not lock.held
