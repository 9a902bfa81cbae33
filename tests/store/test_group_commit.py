"""Group commit across sessions: batches that arrive together share one worker job, and each
caller gets what a lone `set_keys` promises (durable and readable once answered); the legacy files
follow from the journal's worker (bounded), and a checkpoint makes the folder alone exact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from bridge.errors import StoreError
from bridge.store import group_commit, journal
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.journal import JournalBackend

StoreFactory = Callable[..., AuthStore]
SESSIONS = 12
KEYS = 5


def _journal_fsyncs() -> float:
    return REGISTRY.get_sample_value("bridge_store_fsyncs_total", {"target": "journal"}) or 0.0


async def test_many_sessions_writing_at_once_share_groups_and_every_key_lands(make_store: StoreFactory) -> None:
    stores = [make_store(f"g{i}") for i in range(SESSIONS)]
    astores = [AsyncAuthStore(store) for store in stores]
    stats = group_commit.stats
    before = (stats.groups, stats.batches, _journal_fsyncs(), stats.syncfs_journals)

    async def one(index: int, astore: AsyncAuthStore) -> None:
        for k in range(KEYS):
            await astore.set_keys({"session": {f"{k}.0": json.dumps({"s": index, "k": k})}})
            answered = await astore.get_keys("session", [f"{k}.0"])
            assert answered == {f"{k}.0": json.dumps({"s": index, "k": k})}, "readable once set_keys returned"

    await asyncio.gather(*(one(i, a) for i, a in enumerate(astores)))
    groups = group_commit.stats.groups - before[0]
    batches = group_commit.stats.batches - before[1]
    assert batches == SESSIONS * KEYS
    assert groups <= batches // 2, f"{batches} batches in {groups} groups: concurrent batches must share a job"
    made_durable = _journal_fsyncs() - before[2] + group_commit.stats.syncfs_journals - before[3]
    assert made_durable == SESSIONS * KEYS, "each batch durable once: its journal's fdatasync or the group's syncfs"
    for index, store in enumerate(stores):
        ids = [f"{k}.0" for k in range(KEYS)]
        assert store.get_keys("session", ids) == {f"{k}.0": json.dumps({"s": index, "k": k}) for k in range(KEYS)}
        assert isinstance(store.backend, JournalBackend)
        assert store.backend.journal.stats.records == KEYS
        store.checkpoint()
        for k in range(KEYS):
            path = store.folder / f"session-{k}.0.json"
            assert json.loads(path.read_bytes()) == {"s": index, "k": k}, "the folder alone is exact after a checkpoint"


async def test_a_refused_batch_fails_only_its_own_caller(make_store: StoreFactory) -> None:
    good, bad = AsyncAuthStore(make_store("good")), AsyncAuthStore(make_store("bad"))
    results = await asyncio.gather(
        good.set_keys({"session": {"1.0": '{"ok": true}'}}),
        bad.set_keys({"session": {"1.0": '{"ok": true}', "2.0": "not json"}}),
        good.set_keys({"session": {"2.0": '{"ok": 2}'}}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError)
    assert await good.get_keys("session", ["1.0", "2.0"]) == {"1.0": '{"ok": true}', "2.0": '{"ok": 2}'}
    assert await bad.get_keys("session", ["1.0", "2.0"]) == {"1.0": None, "2.0": None}, "all or nothing"


async def test_writes_of_one_session_keep_their_order_across_groups(make_store: StoreFactory) -> None:
    astore = AsyncAuthStore(make_store())
    others = [AsyncAuthStore(make_store(f"o{i}")) for i in range(4)]
    writes = [astore.set_keys({"session": {"1.0": json.dumps({"n": n})}}) for n in range(20)]
    noise = [o.set_keys({"session": {"1.0": "{}"}}) for o in others for _ in range(5)]
    await asyncio.gather(*writes, *noise)
    assert await astore.get_keys("session", ["1.0"]) == {"1.0": json.dumps({"n": 19})}
    await astore.checkpoint()
    assert json.loads((astore.store.folder / "session-1.0.json").read_bytes()) == {"n": 19}


async def test_the_files_of_an_answered_batch_are_written_by_the_journals_worker(make_store: StoreFactory) -> None:
    astore = AsyncAuthStore(make_store())
    await astore.set_keys({"session": {"1.0": '{"later": true}'}, "pre-key": {"7": '{"k": 7}'}})
    path, prekey = astore.store.folder / "session-1.0.json", astore.store.folder / "pre-key-7.json"
    for _ in range(200):
        if path.exists() and prekey.exists():
            break
        await asyncio.sleep(0.05)
    assert json.loads(path.read_bytes()) == {"later": True} and json.loads(prekey.read_bytes()) == {"k": 7}
    await astore.set_keys({"pre-key": {"7": None}})
    for _ in range(200):
        if not prekey.exists():
            break
        await asyncio.sleep(0.05)
    assert not prekey.exists(), "a deleted key is moved to the trash by the worker too"
    trashed = [p.read_text() for p in astore.store.trash_dir.iterdir() if p.name.endswith("-pre-key-7.json")]
    assert trashed == ['{"k": 7}']


async def test_a_journal_whose_files_lag_writes_them_before_answering(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "MAX_LAG", 0)
    astore = AsyncAuthStore(make_store())
    for n in range(3):
        await astore.set_keys({"session": {"1.0": json.dumps({"n": n})}})
        assert json.loads((astore.store.folder / "session-1.0.json").read_bytes()) == {"n": n}


async def test_a_closed_journal_fails_the_batch_and_the_group_goes_on(make_store: StoreFactory) -> None:
    closed_store = make_store("closed")
    closed, open_ = AsyncAuthStore(closed_store), AsyncAuthStore(make_store("open"))
    closed_store.close()
    results = await asyncio.gather(
        closed.set_keys({"session": {"1.0": "{}"}}),
        open_.set_keys({"session": {"1.0": "{}"}}),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError) and results[1] is None
    with pytest.raises(StoreError):
        await closed.set_keys({"session": {"2.0": "{}"}})
    assert await open_.get_keys("session", ["1.0"]) == {"1.0": "{}"}
