"""`durable.overwrite_unsynced`: key files are rewritten in place (like legacy's writeFile), but never
through a symlink, a hard link or a special file, and creds.json is still replaced by rename."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bridge.store import durable
from bridge.store.auth_store import AuthStore


def test_an_existing_file_is_rewritten_in_place_and_a_new_one_is_private(tmp_path: Path) -> None:
    path = tmp_path / "session-1.0.json"
    durable.overwrite_unsynced(path, b'{"a": "long value"}')
    assert path.read_bytes() == b'{"a": "long value"}'
    assert path.stat().st_mode & 0o777 == 0o600
    inode = path.stat().st_ino
    durable.overwrite_unsynced(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}', "a shorter value leaves no tail of the old one"
    assert path.stat().st_ino == inode


def test_a_symlink_is_replaced_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not yours")
    link = tmp_path / "folder" / "session-1.0.json"
    link.parent.mkdir()
    link.symlink_to(outside)
    durable.overwrite_unsynced(link, b"{}")
    assert outside.read_bytes() == b"not yours"
    assert not link.is_symlink() and link.read_bytes() == b"{}"


def test_a_hard_linked_file_is_replaced_so_the_other_name_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "session-1.0.json"
    path.write_bytes(b'{"old": true}')
    copy = tmp_path / "operator-copy.json"
    os.link(path, copy)
    durable.overwrite_unsynced(path, b'{"new": true}')
    assert copy.read_bytes() == b'{"old": true}'
    assert path.read_bytes() == b'{"new": true}'


def test_a_fifo_in_the_way_does_not_block_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "session-1.0.json"
    os.mkfifo(path)
    done = threading.Event()

    def write() -> None:
        durable.overwrite_unsynced(path, b"{}")
        done.set()

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    assert done.wait(10), "opening a FIFO without a reader must not hang the writer"
    assert path.is_file() and path.read_bytes() == b"{}"


def test_key_files_are_rewritten_in_place_but_creds_by_rename(auth_root: Path, fresh_creds: str) -> None:
    store = AuthStore(auth_root / "s1", session_id="s1", bridge_dir=auth_root / ".bridge")
    try:
        store.set_keys({"session": {"1.0": '{"v": 1}'}})
        store.save_creds(fresh_creds)
        key, creds = store.folder / "session-1.0.json", store.folder / "creds.json"
        key_inode, creds_inode = key.stat().st_ino, creds.stat().st_ino
        store.set_keys({"session": {"1.0": '{"v": 2}'}})
        store.save_creds(fresh_creds.replace("{", '{"x": 1, ', 1))
        assert key.read_bytes() == b'{"v": 2}' and key.stat().st_ino == key_inode
        assert creds.stat().st_ino != creds_inode, "creds.json is never seen torn by a live reader"
    finally:
        store.close()
