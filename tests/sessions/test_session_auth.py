"""SessionAuth on a real full tmpfs: the first failed write stops writes (and tells the session),
later ones are held back without touching the disk, and a flush writes them in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.sessions.auth import SessionAuth
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.identity import IdentityBook
from bridge.store.snapshots import Snapshots
from tests.sessions.disk import small_disk

CREDS = (Path(__file__).parents[1] / "runtime" / "fixtures_creds.json").read_text()
#: A write that needs fresh pages even for its journal record: a small batch can still fit into
#: the page the session journal's segment already has, and is then durable and acknowledged on a
#: full disk (its files follow once space returns), so it would not fault.
BIG = json.dumps({"pad": "x" * 65536})


def session_auth(root: Path, faults: list[StoreError]) -> SessionAuth:
    folder = root / "s"
    store = AuthStore(folder, session_id="s", bridge_dir=root / ".bridge")
    return SessionAuth(AsyncAuthStore(store), session_id="s", folder=folder, snapshots=Snapshots(root),
                       identities=IdentityBook(root / ".bridge"), on_fault=faults.append)


async def test_writes_after_a_storage_fault_are_held_in_order_and_flushed_when_space_returns() -> None:
    with small_disk("1m") as disk:
        faults: list[StoreError] = []
        auth = session_auth(disk.path, faults)
        await auth.save_creds(CREDS)
        await auth.set_keys({"session": {"a.0": '{"v": 1}'}})
        disk.fill()

        with pytest.raises(StoreError) as first:
            await auth.set_keys({"session": {"a.0": '{"v": 2}', "b.0": '{"v": 1}', "big.0": BIG}})
        assert first.value.code == "storage_full" and faults == [first.value]
        disk.free()  # space is back, but nothing may overtake the held write
        with pytest.raises(StoreError):
            await auth.set_keys({"session": {"a.0": '{"v": 3}'}, "pre-key": {"7": None}})
        newer = json.dumps({**json.loads(CREDS), "nextPreKeyId": 4242})
        with pytest.raises(StoreError):
            await auth.save_creds(newer)
        assert len(faults) == 1 and auth.holds_writes and auth.held_writes == 3
        assert await auth.get_keys("session", ["a.0", "b.0"]) == {"a.0": '{"v": 1}', "b.0": None}

        await auth.flush()
        assert auth.fault is None and not auth.holds_writes
        assert await auth.get_keys("session", ["a.0", "b.0"]) == {"a.0": '{"v": 3}', "b.0": '{"v": 1}'}
        assert json.loads(await auth.load_creds() or "{}")["nextPreKeyId"] == 4242
        await auth.set_keys({"session": {"a.0": '{"v": 4}'}})  # writes go straight to disk again
        assert await auth.get_keys("session", ["a.0"]) == {"a.0": '{"v": 4}'}
        await auth.store.checkpoint()
        assert (disk.path / "s" / "session-a.0.json").read_text() == '{"v": 4}'
        await auth.store.close()  # releases the session journal so the tmpfs can be unmounted


async def test_a_flush_on_a_still_full_disk_keeps_everything_held() -> None:
    with small_disk("1m") as disk:
        faults: list[StoreError] = []
        auth = session_auth(disk.path, faults)
        await auth.save_creds(CREDS)
        disk.fill()
        with pytest.raises(StoreError):
            await auth.set_keys({"session": {"a.0": '{"v": 1}', "big.0": BIG}})
        with pytest.raises(StoreError):
            await auth.flush()
        assert auth.holds_writes and auth.fault is not None
        disk.free()
        await auth.flush()
        assert await auth.get_keys("session", ["a.0"]) == {"a.0": '{"v": 1}'}
        await auth.store.close()
