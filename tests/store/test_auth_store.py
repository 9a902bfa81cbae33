"""AuthStore: creds can never be lost, deletes go to the trash, hostile input changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.errors import CredsCorruptError, HostileNameError, StoreError
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.durable import TEMP_PREFIX
from bridge.store.snapshots import Snapshots

StoreFactory = Callable[..., AuthStore]


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}


def test_a_new_folder_has_no_creds_and_is_created(make_store: StoreFactory) -> None:
    store = make_store("fresh")
    assert store.folder.is_dir()
    assert store.load_creds() is None


def test_saved_creds_are_the_exact_bytes(make_store: StoreFactory, fresh_creds: str) -> None:
    store = make_store()
    store.save_creds(fresh_creds)
    assert store.creds_path.read_bytes() == fresh_creds.encode()
    assert store.load_creds() == fresh_creds
    assert not any(n.startswith(TEMP_PREFIX) for n in os.listdir(store.folder))


@pytest.mark.parametrize("bad", ["", "{}", "null", '{"noiseKey": 1}', "{trunc"])
def test_creds_can_never_be_emptied_or_replaced_by_invalid_json(
    make_store: StoreFactory, registered_creds: str, bad: str
) -> None:
    store = make_store()
    store.save_creds(registered_creds)
    with pytest.raises(CredsCorruptError):
        store.save_creds(bad)
    assert store.creds_path.read_text() == registered_creds


def test_no_key_operation_can_touch_creds(make_store: StoreFactory, registered_creds: str) -> None:
    store = make_store()
    store.save_creds(registered_creds)
    for key_type, key_id in [("creds", ""), ("creds.json", ""), ("pre-key", "../creds"), ("session", "/../creds")]:
        try:
            store.set_keys({key_type: {key_id: None}})
        except HostileNameError:
            pass
    assert store.load_creds() == registered_creds


def test_corrupt_creds_raise_naming_the_file_and_the_latest_snapshot(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str, auth_root: Path
) -> None:
    store = make_store("t1")
    store.save_creds(registered_creds)
    snaps = Snapshots(auth_root)
    linked = snaps.create("t1")
    store.save_creds(fresh_creds)
    unlinked = snaps.create("t1")
    assert linked.registered and not unlinked.registered
    store.creds_path.write_text(fresh_creds[: len(fresh_creds) // 2])  # a torn legacy write

    with pytest.raises(CredsCorruptError) as err:
        store.load_creds()
    message = str(err.value)
    assert str(store.creds_path) in message
    assert linked.id in message, "must point at the newest registered snapshot"
    assert "restore" in message


def test_corrupt_creds_without_snapshots_still_refuse_to_start_fresh(make_store: StoreFactory) -> None:
    store = make_store("t2")
    store.creds_path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(CredsCorruptError, match="will not start this session fresh"):
        store.load_creds()
    store.creds_path.write_bytes(b"")
    with pytest.raises(CredsCorruptError, match="empty"):
        store.load_creds()


def test_downgrade_calls_the_hook_before_writing(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str
) -> None:
    seen: list[tuple[str, str]] = []
    store: AuthStore

    def hook(reason: str) -> None:
        seen.append((reason, store.creds_path.read_text()))

    store = make_store(before_creds_downgrade=hook)
    store.save_creds(registered_creds)
    store.save_creds(registered_creds)  # unchanged: no write, no hook
    assert seen == []
    store.save_creds(fresh_creds)
    assert seen == [("creds-downgrade", registered_creds)], "the hook must see the old registered creds"
    assert store.load_creds() == fresh_creds
    store.save_creds(registered_creds)  # upgrade: no hook
    assert len(seen) == 1


def test_a_failing_hook_keeps_the_registered_creds(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str
) -> None:
    def hook(reason: str) -> None:
        raise OSError(28, "No space left on device")

    store = make_store(before_creds_downgrade=hook)
    store.save_creds(registered_creds)
    with pytest.raises(StoreError, match="NOT changed"):
        store.save_creds(fresh_creds)
    assert store.load_creds() == registered_creds


def test_default_downgrade_hook_copies_creds_into_bridge_dir(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str, auth_root: Path
) -> None:
    store = make_store("t3")
    store.save_creds(registered_creds)
    store.save_creds(fresh_creds)
    backups = list((auth_root / ".bridge" / "creds-backups" / "t3").iterdir())
    assert len(backups) == 1
    assert backups[0].read_text() == registered_creds
    assert "creds-downgrade" in backups[0].name


def test_saving_over_unreadable_creds_keeps_a_copy_of_them(make_store: StoreFactory, fresh_creds: str) -> None:
    store = make_store("t4")
    store.creds_path.write_bytes(b'{"torn": ')
    store.save_creds(fresh_creds)
    (backup,) = list(store.creds_backup_dir.iterdir())
    assert backup.read_bytes() == b'{"torn": '
    assert store.load_creds() == fresh_creds


def test_keys_round_trip_and_absent_keys_are_none(make_store: StoreFactory) -> None:
    store = make_store()
    buffer = '{"type":"Buffer","data":"AA=="}'
    store.set_keys({"pre-key": {"1": '{"a":1}', "2": '{"b":2}'}, "session": {"49.0": buffer}})
    assert store.get_keys("pre-key", ["1", "2", "3"]) == {"1": '{"a":1}', "2": '{"b":2}', "3": None}
    assert store.get_keys("session", ["49.0"]) == {"49.0": buffer}
    assert sorted(store.list_keys()) == [("pre-key", "1"), ("pre-key", "2"), ("session", "49.0")]


def test_deleting_a_key_moves_it_to_the_trash(make_store: StoreFactory, auth_root: Path) -> None:
    store = make_store("t5")
    store.set_keys({"pre-key": {"7": '{"k":7}'}})
    store.set_keys({"pre-key": {"7": None, "8": None}})  # 8 never existed: ignored, like legacy
    assert store.get_keys("pre-key", ["7"]) == {"7": None}
    (trashed,) = list((auth_root / ".bridge" / "trash" / "t5").iterdir())
    assert trashed.name.endswith("-pre-key-7.json")
    assert trashed.read_text() == '{"k":7}'
    store.set_keys({"pre-key": {"7": '{"k":77}'}})
    store.set_keys({"pre-key": {"7": "null"}})  # JSON null is a delete too
    assert len(list(store.trash_dir.iterdir())) == 2


def test_a_batch_with_one_bad_value_or_name_writes_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    store.set_keys({"pre-key": {"1": '{"v":1}'}})
    before = _folder_state(store.folder)
    with pytest.raises(StoreError, match="not valid JSON"):
        store.set_keys({"pre-key": {"1": '{"v":2}', "2": "{torn"}})
    with pytest.raises(HostileNameError):
        store.set_keys({"pre-key": {"1": '{"v":3}'}, "session": {"a\x00b": "1"}})
    with pytest.raises(HostileNameError):
        store.set_keys({"pre-key": {"1": None}, "../../x": {"1": "1"}})
    assert _folder_state(store.folder) == before


def test_a_corrupt_key_file_reads_as_absent_like_legacy(make_store: StoreFactory) -> None:
    store = make_store()
    (store.folder / "session-1.0.json").write_text('{"half":')
    assert store.get_keys("session", ["1.0"]) == {"1.0": None}


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(make_store: StoreFactory) -> None:
    store = make_store("t6")
    dead = store.folder / f"{TEMP_PREFIX}999999999.deadbeef"
    mine = store.folder / f"{TEMP_PREFIX}{os.getpid()}.cafe"
    dead.write_text("x")
    mine.write_text("y")
    make_store("t6")
    assert not dead.exists()
    assert mine.exists()


def test_a_file_where_the_folder_should_be_is_an_error(auth_root: Path) -> None:
    (auth_root / "s9").write_text("not a folder")
    with pytest.raises(StoreError, match="not a folder"):
        AuthStore(auth_root / "s9", session_id="s9", bridge_dir=auth_root / ".bridge")


def test_a_hostile_session_id_is_refused(auth_root: Path) -> None:
    with pytest.raises(HostileNameError):
        AuthStore(auth_root / "x", session_id="../x", bridge_dir=auth_root / ".bridge")


async def test_async_wrapper_runs_file_io_off_the_event_loop(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str
) -> None:
    threads: list[str] = []
    store = make_store(before_creds_downgrade=lambda reason: threads.append(threading.current_thread().name))
    astore = AsyncAuthStore(store)
    assert await astore.load_creds() is None
    await astore.save_creds(registered_creds)
    await astore.set_keys({"device-list": {"49": '["0","1"]'}})
    assert await astore.get_keys("device-list", ["49"]) == {"49": '["0","1"]'}
    await astore.save_creds(fresh_creds)
    assert await astore.load_creds() == fresh_creds
    assert threads and threads[0] != threading.main_thread().name


def _fsyncs(target: str) -> float:
    return REGISTRY.get_sample_value("bridge_store_fsyncs_total", {"target": target}) or 0.0


def test_a_batch_is_one_group_commit(make_store: StoreFactory) -> None:
    store = make_store()
    store.set_keys({"pre-key": {"0": "{}"}})  # folder exists and is synced
    before = {target: _fsyncs(target) for target in ("journal", "file", "dir", "syncfs")}
    store.set_keys({"pre-key": {str(i): json.dumps({"i": i}) for i in range(1, 51)}})
    after = {target: _fsyncs(target) - count for target, count in before.items()}
    assert after == {"journal": 1, "file": 0, "dir": 0, "syncfs": 0}, "one journal record, one fdatasync"
    assert store.get_keys("pre-key", ["50"]) == {"50": json.dumps({"i": 50})}
    assert json.loads((store.folder / "pre-key-50.json").read_text()) == {"i": 50}, "files follow at once"


async def test_concurrent_async_writes_land_in_request_order(make_store: StoreFactory) -> None:
    astore = AsyncAuthStore(make_store())
    # The first request carries a big value (slow to validate), so the second could overtake it.
    values = [json.dumps({"n": 0, "pad": ["x"] * 2_000_000}), json.dumps({"n": 1})]
    await asyncio.gather(*(astore.set_keys({"session": {"1.0": value}}) for value in values))
    assert await astore.get_keys("session", ["1.0"]) == {"1.0": values[-1]}


def test_registered_creds_replaced_by_another_identity_are_kept_first(
    make_store: StoreFactory, registered_creds: str, fresh_creds: str
) -> None:
    seen: list[str] = []
    store = make_store(before_creds_downgrade=seen.append)
    store.save_creds(registered_creds)
    same_identity = json.loads(registered_creds)
    same_identity["accountSyncCounter"] = 3
    store.save_creds(json.dumps(same_identity))  # a routine update: no hook
    assert seen == []
    other = json.loads(fresh_creds)
    other["me"] = {"id": "4915199999999:1@s.whatsapp.net"}
    other["registered"] = True
    store.save_creds(json.dumps(other))
    assert seen == ["creds-identity-change"]
