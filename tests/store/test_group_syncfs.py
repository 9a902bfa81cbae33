"""One syncfs per group: a group commit that touches enough journals of one file system makes them
durable with ONE syncfs instead of one fdatasync each, and a failed syncfs fails every batch it was
covering, never acknowledging one (bridge/store/group_commit.py, journal_log.py)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY

from bridge.errors import StoreError
from bridge.store import durable, group_commit
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.journal import JournalBackend
from tests.store.conftest import mounted_tmpfs

StoreFactory = Callable[..., AuthStore]
ENOUGH = group_commit.SYNCFS_MIN_JOURNALS

needs_syncfs = pytest.mark.skipif(
    not durable.syncfs_reports_errors(),
    reason=f"syncfs stands in for fdatasync only on Linux >= 5.8 with syncfs (here: {os.uname().release})",
)


def _fsyncs(target: str) -> float:
    return REGISTRY.get_sample_value("bridge_store_fsyncs_total", {"target": target}) or 0.0


@pytest.fixture(autouse=True)
def syncfs_on() -> Iterator[None]:
    """Every test starts with the switch as a default bridge has it, and leaves it so."""
    group_commit.configure(syncfs=True)
    yield
    group_commit.configure(syncfs=True)


async def _one_group(stores: list[AsyncAuthStore], key: str = "1.0") -> list[BaseException | None]:
    """One batch per store, all submitted in one turn of the loop: exactly one group."""
    groups = group_commit.stats.groups
    results = await asyncio.gather(
        *(s.set_keys({"session": {key: json.dumps({"s": s.store.session_id})}}) for s in stores),
        return_exceptions=True,
    )
    assert group_commit.stats.groups == groups + 1, "the batches did not form one group"
    return [r if isinstance(r, BaseException) else None for r in results]


@pytest.fixture()
def own_fs_store() -> Iterator[StoreFactory]:
    """`make_store` on a tmpfs of its own: the file system's shared syncfs descriptor (and its
    retirement after an error) belongs to this test alone."""
    with mounted_tmpfs("64m") as root:
        opened: list[AuthStore] = []

        def factory(session_id: str) -> AuthStore:
            store = AuthStore(root / session_id, session_id=session_id, bridge_dir=root / ".bridge")
            opened.append(store)
            return store

        try:
            yield factory
        finally:
            for store in opened:
                with contextlib.suppress(Exception):
                    store.close()


def _fail_syncfs(fd: int, target: str = "journal_syncfs") -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


def _counters() -> tuple[float, float, int]:
    return _fsyncs("journal"), _fsyncs("journal_syncfs"), group_commit.stats.syncfs


@needs_syncfs
async def test_a_group_of_enough_journals_costs_one_syncfs_and_no_fdatasync(make_store: StoreFactory) -> None:
    stores = [AsyncAuthStore(make_store(f"s{i}")) for i in range(ENOUGH + 2)]
    before = _counters()
    assert await _one_group(stores) == [None] * len(stores)
    fdatasyncs, syncfs, groups_synced = (now - then for now, then in zip(_counters(), before, strict=True))
    assert (fdatasyncs, syncfs, groups_synced) == (0, 1, 1), "one syncfs for the whole group, no fdatasync"
    for astore in stores:
        assert await astore.get_keys("session", ["1.0"]) == {"1.0": json.dumps({"s": astore.store.session_id})}
        backend = astore.store.backend
        assert isinstance(backend, JournalBackend)
        assert (backend.journal.stats.fsyncs, backend.journal.stats.syncfs) == (0, 1)
        await astore.checkpoint()
        assert json.loads((astore.store.folder / "session-1.0.json").read_bytes()) == {"s": astore.store.session_id}


@needs_syncfs
async def test_a_group_of_fewer_journals_fdatasyncs_each(make_store: StoreFactory) -> None:
    stores = [AsyncAuthStore(make_store(f"s{i}")) for i in range(ENOUGH - 1)]
    before = _counters()
    assert await _one_group(stores) == [None] * len(stores)
    fdatasyncs, syncfs, _ = (now - then for now, then in zip(_counters(), before, strict=True))
    assert (fdatasyncs, syncfs) == (ENOUGH - 1, 0)


async def test_the_switch_off_keeps_one_fdatasync_per_journal(make_store: StoreFactory) -> None:
    group_commit.configure(syncfs=False)
    stores = [AsyncAuthStore(make_store(f"s{i}")) for i in range(ENOUGH + 2)]
    before = _counters()
    assert await _one_group(stores) == [None] * len(stores)
    fdatasyncs, syncfs, _ = (now - then for now, then in zip(_counters(), before, strict=True))
    assert (fdatasyncs, syncfs) == (ENOUGH + 2, 0)


async def test_a_kernel_older_than_5_8_keeps_the_fdatasyncs(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 5.8 syncfs returns success for a page the kernel failed to write back: never use it."""
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((*real[:2], "5.4.0-150-generic", *real[3:])))
    assert not durable.syncfs_reports_errors()
    stores = [AsyncAuthStore(make_store(f"s{i}")) for i in range(ENOUGH + 2)]
    backend = stores[0].store.backend
    assert isinstance(backend, JournalBackend) and backend.journal.log.file_system is None
    before = _counters()
    assert await _one_group(stores) == [None] * len(stores)
    fdatasyncs, syncfs, _ = (now - then for now, then in zip(_counters(), before, strict=True))
    assert (fdatasyncs, syncfs) == (ENOUGH + 2, 0)


def test_kernel_versions_parse() -> None:
    assert durable.kernel_version("6.18.44-fc-v1098") == (6, 18)
    assert durable.kernel_version("5.8.0") == (5, 8)
    assert durable.kernel_version("5.10rc1") == (5, 10)
    assert durable.kernel_version("garbage") is None
    assert (5, 7) < durable.SYNCFS_ERRSEQ_KERNEL <= (5, 8) < (6, 1)


@needs_syncfs
def test_the_journals_of_one_file_system_share_one_descriptor_opened_before_their_first_append(
    own_fs_store: StoreFactory,
) -> None:
    """The descriptor whose errors syncfs reports is taken when a journal opens (before any append)
    and closed with the last journal on that file system, so nothing holds an unmount up."""
    first, second = own_fs_store("a"), own_fs_store("b")
    assert isinstance(first.backend, JournalBackend) and isinstance(second.backend, JournalBackend)
    shared = first.backend.journal.log.file_system
    assert shared is not None and shared is second.backend.journal.log.file_system
    assert shared.users == 2 and first.backend.journal.stats.records == 0
    assert shared.device == os.stat(first.folder).st_dev
    first.close()
    assert shared.users == 1 and not shared.handle.closed
    second.close()
    assert shared.users == 0 and shared.handle.closed


@needs_syncfs
async def test_a_failed_syncfs_fails_every_batch_of_its_group_and_none_is_readable(
    own_fs_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO from syncfs (injected where the store makes the call, as the other disk-error tests
    inject it into fsync): no batch of the group is acknowledged, none is readable, not even after
    the sessions reopen their journals (the unsynced records were cut off), and the file system's
    descriptor is retired: the next group there fdatasyncs each journal."""
    stores = [AsyncAuthStore(own_fs_store(f"s{i}")) for i in range(ENOUGH + 2)]
    assert await _one_group(stores, key="0.0") == [None] * len(stores)
    monkeypatch.setattr(durable, "syncfs_fd", _fail_syncfs)
    errors = await _one_group(stores)
    monkeypatch.undo()
    for error in errors:
        assert isinstance(error, StoreError) and error.code == "storage_io", error
    for astore in stores:
        assert await astore.get_keys("session", ["1.0"]) == {"1.0": None}, "a failed batch is never readable"
        assert not (astore.store.folder / "session-1.0.json").exists()
        with pytest.raises(StoreError, match="restarted"):
            await astore.set_keys({"session": {"2.0": "{}"}})

    others = [AsyncAuthStore(own_fs_store(f"o{i}")) for i in range(ENOUGH + 2)]
    before = _counters()
    assert await _one_group(others) == [None] * len(others)
    fdatasyncs, syncfs, _ = (now - then for now, then in zip(_counters(), before, strict=True))
    assert (fdatasyncs, syncfs) == (len(others), 0), "after a syncfs error each journal is fdatasynced"

    folders = [(a.store.session_id, a.store.folder, a.store.bridge_dir) for a in stores]
    for astore in stores:
        with pytest.raises(StoreError, match="refuses"):  # its checkpoint refuses; the journal is released
            astore.store.close()
    for session_id, folder, bridge_dir in folders:
        reopened = AuthStore(folder, session_id=session_id, bridge_dir=bridge_dir)
        try:
            assert reopened.get_keys("session", ["0.0", "1.0"]) == {"0.0": json.dumps({"s": session_id}), "1.0": None}
        finally:
            reopened.close()


@needs_syncfs
async def test_a_retired_descriptor_is_replaced_once_every_journal_on_it_closed(
    own_fs_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [AsyncAuthStore(own_fs_store(f"s{i}")) for i in range(ENOUGH)]
    monkeypatch.setattr(durable, "syncfs_fd", _fail_syncfs)
    assert all(isinstance(e, StoreError) for e in await _one_group(stores))
    monkeypatch.undo()
    for astore in stores:
        with contextlib.suppress(StoreError):
            astore.store.close()
    fresh = [AsyncAuthStore(own_fs_store(f"f{i}")) for i in range(ENOUGH)]
    before = _counters()
    assert await _one_group(fresh) == [None] * len(fresh)
    assert _counters()[1] - before[1] == 1, "a new descriptor, so one syncfs again"


@needs_syncfs
async def test_a_batch_appended_while_the_syncfs_runs_waits_and_gets_its_own_fdatasync(
    own_fs_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The syncfs covers what was appended before it began, no more: a synchronous commit on one of
    the group's journals meanwhile (a running session's `save_creds` takes that path) waits for it
    instead of racing it, then makes its own record durable with its own fdatasync."""
    stores = [own_fs_store(f"s{i}") for i in range(ENOUGH)]
    entered, release = threading.Event(), threading.Event()
    real_syncfs = durable.syncfs_fd

    def held_syncfs(fd: int, target: str = "journal_syncfs") -> None:
        entered.set()
        release.wait(30)
        real_syncfs(fd, target)

    monkeypatch.setattr(durable, "syncfs_fd", held_syncfs)
    group = asyncio.gather(*(AsyncAuthStore(s).set_keys({"session": {"1.0": '{"group": 1}'}}) for s in stores))
    assert await asyncio.to_thread(entered.wait, 30)
    backend = stores[0].backend
    assert isinstance(backend, JournalBackend)
    fdatasyncs = backend.journal.stats.fsyncs
    lone = asyncio.ensure_future(asyncio.to_thread(stores[0].set_keys, {"pre-key": {"9": '{"lone": 1}'}}))
    await asyncio.sleep(0.2)
    assert not lone.done(), "answered while the syncfs that cannot cover it was still running"
    release.set()
    await group
    await lone
    assert backend.journal.stats.syncfs == 1
    assert backend.journal.stats.fsyncs == fdatasyncs + 1, "appended after the syncfs began: its own fdatasync"
    assert stores[0].get_keys("pre-key", ["9"]) == {"9": '{"lone": 1}'}


@needs_syncfs
def test_a_checkpoint_can_sync_through_the_shared_descriptor_and_an_error_retires_it(
    own_fs_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`JournalLog.sync_file_system`, for checkpoints: the same long-lived descriptor, so an error a
    group's syncfs (or anyone's) already saw is not missed; after an error it refuses (False) and
    the caller fsyncs file by file."""
    store = own_fs_store("s0")
    assert isinstance(store.backend, JournalBackend)
    log = store.backend.journal.log
    before = _fsyncs("syncfs")
    assert log.sync_file_system() is True
    assert _fsyncs("syncfs") == before + 1
    monkeypatch.setattr(durable, "syncfs_fd", _fail_syncfs)
    with pytest.raises(OSError):
        log.sync_file_system()
    monkeypatch.undo()
    assert log.file_system is not None and log.file_system.retired is not None
    assert log.sync_file_system() is False, "a retired descriptor is never used again"
