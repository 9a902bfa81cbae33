"""Disk full, permission denied, I/O error: a clear StoreError, the old file intact, no temp litter.

Disk full is real (a small tmpfs mounted by the test; skipped when mounting is not permitted) and
so is permission denied (a forked child drops to user `nobody` and opens its own store, which the
session's journal refuses). A failing disk cannot be produced here (no device-mapper), so EIO is
injected into `os.fsync` and `os.fdatasync`, the calls that report it in practice.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import StoreError
from bridge.store.auth_store import AuthStore
from bridge.store.durable import TEMP_PREFIX, explain_os_error, is_storage_fault
from bridge.store.lock import RepositoryLock, RootLock, SessionLock
from bridge.store.snapshots import Snapshots
from tests.store.conftest import mounted_tmpfs
from tests.store.test_snapshots import make_legacy

NOBODY = 65534


def _no_temp_files(folder: Path) -> bool:
    return not [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]


@pytest.fixture()
def tiny_tmpfs() -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards."""
    with mounted_tmpfs("64k") as mount_point:
        yield mount_point


def _fill(path: Path) -> None:
    """Write until the file system is full."""
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as fh:  # fill the last partial page too
        try:
            while True:
                fh.write(b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_disk_full_gives_a_clear_error_and_keeps_the_old_files(registered_creds: str) -> None:
    # 256 KiB: room for the files and their journal records once the filler is gone.
    with mounted_tmpfs("256k") as mount_point:
        store = AuthStore(mount_point / "s1", session_id="s1", bridge_dir=mount_point / ".bridge")
        try:
            _disk_full_then_freed(store, mount_point / "filler", registered_creds)
        finally:
            store.close()  # releases the journal's files so the tmpfs can be unmounted


def _disk_full_then_freed(store: AuthStore, filler: Path, registered_creds: str) -> None:
    store.save_creds(registered_creds)
    store.set_keys({"pre-key": {"1": json.dumps({"v": 1})}})
    _fill(filler)

    newer = json.loads(registered_creds)
    newer["accountSyncCounter"] = 99
    newer["padding"] = "p" * 5000
    with pytest.raises(StoreError) as err:
        store.save_creds(json.dumps(newer))
    assert err.value.code == "storage_full" and is_storage_fault(err.value)
    message = str(err.value)
    assert str(store.creds_path) in message
    assert "full" in message and "free space" in message
    assert store.load_creds() == registered_creds
    assert _no_temp_files(store.folder)

    batch = {"pre-key": {str(i): json.dumps({"v": 2, "pad": "k" * 3000}) for i in range(1, 8)}}
    with pytest.raises(StoreError, match="full"):
        store.set_keys(batch)
    assert store.get_keys("pre-key", ["1", "2"]) == {"1": json.dumps({"v": 1}), "2": None}
    assert _no_temp_files(store.folder)

    filler.unlink()
    store.set_keys(batch)
    store.save_creds(json.dumps(newer))
    assert store.load_creds() == json.dumps(newer)


def _in_child_as_nobody(action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` in a forked child with uid/gid nobody; return what it raised or returned."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome: dict[str, Any] = {"raised": None}
            try:
                action()
            except Exception as exc:
                code = getattr(exc, "code", None)
                outcome = {"raised": type(exc).__name__, "message": str(exc), "code": code}
            os.write(write_fd, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data)
    return result


@pytest.fixture()
def shared_dir() -> Iterator[Path]:
    """A root-owned 0755 folder outside pytest's private 0700 tmp tree."""
    path = Path(tempfile.mkdtemp(prefix="bridge-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_permission_denied_names_the_path_and_the_fix(shared_dir: Path, registered_creds: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to user nobody (as non-root, chmod the folder instead)")
    bridge_dir = shared_dir / ".bridge"
    store = AuthStore(shared_dir / "s1", session_id="s1", bridge_dir=bridge_dir)
    store.save_creds(registered_creds)
    store.set_keys({"session": {"1.0": '{"v":1}'}})
    store.close()  # the child must open its own store: an inherited journal would write as root
    store.folder.chmod(0o755)
    store.creds_path.chmod(0o644)

    def open_store() -> AuthStore:
        return AuthStore(store.folder, session_id="s1", bridge_dir=bridge_dir)

    newer = json.loads(registered_creds)
    newer["accountSyncCounter"] = 5
    for action in (
        lambda: open_store().set_keys({"session": {"2.0": '{"v":2}'}}),
        lambda: open_store().save_creds(json.dumps(newer)),
        lambda: open_store().load_creds(),
    ):
        got = _in_child_as_nobody(action)
        assert (got["raised"], got["code"]) == ("StoreError", "storage_permission"), got
        assert str(bridge_dir / "journal" / "s1") in got["message"], "names the session's journal"
        assert "Permission denied" in got["message"] and "chown" in got["message"]

    store.folder.chmod(0o700)
    got = _in_child_as_nobody(open_store)
    assert (got["raised"], got["code"]) == ("StoreError", "storage_permission"), "a folder we may not enter"
    got = _in_child_as_nobody(lambda: Snapshots(shared_dir).create("s1"))
    assert got["code"] == "storage_permission", got
    store.folder.chmod(0o755)

    reopened = open_store()
    try:
        assert reopened.load_creds() == registered_creds
        assert reopened.get_keys("session", ["1.0", "2.0"]) == {"1.0": '{"v":1}', "2.0": None}
    finally:
        reopened.close()
    assert _no_temp_files(store.folder)


def test_an_io_error_on_fsync_keeps_the_old_file(
    make_store: Callable[..., AuthStore], registered_creds: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    store.save_creds(registered_creds)
    store.set_keys({"pre-key": {str(i): '{"v":1}' for i in range(10)}})
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            real_fsync(fd)
            return
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(os, "fdatasync", failing_fsync)  # the journal's acknowledgement
    newer = json.loads(registered_creds)
    newer["accountSyncCounter"] = 7
    with pytest.raises(StoreError) as err:
        store.save_creds(json.dumps(newer))
    assert "I/O error" in str(err.value) and "dmesg" in str(err.value)
    assert err.value.code == "storage_io"
    assert str(store.creds_path) in str(err.value)
    with pytest.raises(StoreError, match="dmesg"):
        store.set_keys({"pre-key": {str(i): '{"v":2}' for i in range(10)}})
    monkeypatch.undo()

    assert store.load_creds() == registered_creds
    assert set(store.get_keys("pre-key", [str(i) for i in range(10)]).values()) == {'{"v":1}'}
    assert _no_temp_files(store.folder)


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (errno.ENOSPC, "storage_full"),
        (errno.EDQUOT, "storage_full"),
        (errno.EROFS, "storage_read_only"),
        (errno.EACCES, "storage_permission"),
        (errno.EPERM, "storage_permission"),
        (errno.EIO, "storage_io"),
        (errno.ENAMETOOLONG, "store_error"),
    ],
)
def test_every_storage_fault_has_its_own_code(number: int, code: str) -> None:
    error = explain_os_error(OSError(number, os.strerror(number)), Path("/auth/s1/creds.json"), "writing")
    assert error.code == code
    assert is_storage_fault(error) == (code != "store_error")
    wrapped = StoreError("a hook failed")
    wrapped.__cause__ = error
    assert is_storage_fault(wrapped) == (code != "store_error"), "the cause chain counts"


@pytest.fixture()
def read_only_root(tiny_tmpfs: Path, registered_creds: str) -> Iterator[Path]:
    """An auth root with one session and its lock file, then remounted read-only (as ops do)."""
    root = tiny_tmpfs / "auth"
    store = AuthStore(root / "s1", session_id="s1", bridge_dir=root / ".bridge")
    store.save_creds(registered_creds)
    store.close()  # nothing may be open for writing when the file system goes read-only
    SessionLock(root / ".bridge", "s1").release()
    with SessionLock(root / ".bridge", "s1"):
        pass
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_tmpfs)], check=True)


def test_a_read_only_root_gives_classified_errors_never_a_raw_oserror(
    read_only_root: Path, registered_creds: str
) -> None:
    bridge_dir = read_only_root / ".bridge"
    with SessionLock(bridge_dir, "s1") as lock:
        assert lock.held, "an existing lock file still locks on a read-only root"
    for attempt in (
        lambda: SessionLock(bridge_dir, "s2").acquire(),
        lambda: RootLock(bridge_dir).acquire(),
        lambda: AuthStore(read_only_root / "s2", session_id="s2", bridge_dir=bridge_dir),
        lambda: AuthStore(read_only_root / "s1", session_id="s1", bridge_dir=bridge_dir).save_creds(
            json.dumps(dict(json.loads(registered_creds), accountSyncCounter=4))
        ),
        lambda: Snapshots(read_only_root).create("s1"),
    ):
        with pytest.raises(StoreError) as err:
            attempt()
        assert err.value.code == "storage_read_only", err.value
        assert "read-only" in str(err.value) and "remount" in str(err.value)
    # The journal cannot be opened for appending, so the store refuses to open (above); the file is intact.
    assert (read_only_root / "s1" / "creds.json").read_text() == registered_creds


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bfree * stats.f_frsize


def test_a_snapshot_failing_on_a_full_disk_leaves_no_object_behind(caplog: pytest.LogCaptureFixture) -> None:
    with mounted_tmpfs("1m") as mount_point:
        root = mount_point / "auth"
        make_legacy(root / "acme", pre_keys=60)
        bridge_dir = root / ".bridge"
        with RepositoryLock(bridge_dir, exclusive=True):
            pass  # the lock file exists, as it does on any root that ever had a snapshot
        filler = mount_point / "filler"
        filler.write_bytes(b"\0" * (_free_bytes(mount_point) - 40 * 1024))  # room for a few objects only
        free_before = _free_bytes(mount_point)

        snaps = Snapshots(root)
        with pytest.raises(StoreError) as err:
            snaps.create("acme", reason="monitor-first")
        assert err.value.code == "storage_full" and is_storage_fault(err.value)
        assert _free_bytes(mount_point) == free_before, "the failed snapshot's objects were taken back"
        assert "object(s) a failed snapshot had written" in caplog.text, "some objects did fit before the disk was full"
        assert not [p for p in (bridge_dir / "objects").rglob("*") if p.is_file()]
        assert snaps.list("acme") == []

        filler.unlink()
        manifest = snaps.create("acme", reason="monitor-first")
        assert snaps.verify(manifest).ok and len(manifest.files) > 60
