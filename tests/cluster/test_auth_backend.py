"""AuthStore on the PostgreSQL backend: the same rules as on files, every write fenced by the lease epoch."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.db import ClusterUnavailableError, LeaseLostError
from bridge.cluster.leases import add_tenant, claim_tenant, release_tenant
from bridge.errors import CredsCorruptError, ErrorCode, HostileNameError, StoreError
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from tests.cluster.pg import PgServer

TTL = 30.0


def _claim(pool: ConnectionPool, session_id: str, node_id: str) -> int:
    with pool.connection() as conn:
        add_tenant(conn, session_id)
        lease = claim_tenant(conn, session_id, node_id, TTL)
    assert lease is not None, f"{session_id} is owned by a live node"
    return lease.epoch


def _expire(pool: ConnectionPool, session_id: str) -> None:
    with pool.connection() as conn:
        conn.execute(
            "UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '1 microsecond' "
            "WHERE session_id = %s",
            (session_id,),
        )


def _rows(pool: ConnectionPool, table: str, session_id: str) -> list[tuple[Any, ...]]:
    with pool.connection() as conn:
        query = {
            "files": "SELECT name, data FROM bridge_auth_files WHERE session_id = %s ORDER BY name",
            "trash": "SELECT name, data FROM bridge_auth_trash WHERE session_id = %s ORDER BY id",
        }[table]
        return [(name, bytes(data)) for name, data in conn.execute(query, (session_id,)).fetchall()]


@pytest.fixture
def make_store(pool: ConnectionPool, tmp_path: Path) -> Iterator[Callable[..., AuthStore]]:
    """`make_store("s1", node="node-a")`: an AuthStore whose backend writes as that node's current lease."""
    opened: list[AuthStore] = []

    def factory(session_id: str = "s1", *, node: str = "node-a", epoch: int | None = None, **kwargs: Any) -> AuthStore:
        if epoch is None:
            epoch = _claim(pool, session_id, node)
        backend = PgAuthBackend(pool, session_id, node_id=node, epoch=epoch, write_wait=kwargs.pop("write_wait", 30.0))
        store = AuthStore(
            tmp_path / node / session_id,
            session_id=session_id,
            bridge_dir=tmp_path / node / ".bridge",
            backend=backend,
            **kwargs,
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def test_creds_and_keys_are_stored_as_the_exact_legacy_bytes(
    make_store: Callable[..., AuthStore], pool: ConnectionPool, legacy_written: tuple[Path, dict[str, Any]]
) -> None:
    folder, texts = legacy_written
    store = make_store()
    store.save_creds(texts["creds"])
    store.set_keys(texts["keys"])
    rows = dict(_rows(pool, "files", "s1"))
    legacy_files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert rows == legacy_files, "the database holds byte for byte what legacy useMultiFileAuthState wrote"
    for key_type, values in texts["keys"].items():
        assert store.get_keys(key_type, list(values)) == values
    assert store.load_creds() == texts["creds"]


def test_a_new_tenant_has_no_creds(make_store: Callable[..., AuthStore]) -> None:
    assert make_store("fresh").load_creds() is None


@pytest.mark.parametrize("bad", ["", "{}", "null", '{"noiseKey": 1}', "{trunc"])
def test_creds_can_never_be_emptied_or_replaced_by_invalid_json(
    make_store: Callable[..., AuthStore], registered_creds: str, bad: str
) -> None:
    store = make_store()
    store.save_creds(registered_creds)
    with pytest.raises(CredsCorruptError):
        store.save_creds(bad)
    assert store.load_creds() == registered_creds


def test_no_key_operation_can_touch_creds(
    make_store: Callable[..., AuthStore], pool: ConnectionPool, registered_creds: str
) -> None:
    store = make_store()
    store.save_creds(registered_creds)
    for key_type, key_id in [("creds", ""), ("creds.json", ""), ("pre-key", "../creds"), ("session", "/../creds")]:
        try:
            store.set_keys({key_type: {key_id: None}})
        except HostileNameError:
            pass
    with pytest.raises(StoreError, match="never be trashed"):
        store.backend.commit({}, ["creds.json"])
    assert store.load_creds() == registered_creds
    assert _rows(pool, "trash", "s1") == []


def test_a_downgrade_calls_the_snapshot_hook_first_and_a_failing_hook_changes_nothing(
    make_store: Callable[..., AuthStore], registered_creds: str, fresh_creds: str
) -> None:
    seen: list[tuple[str, str | None]] = []
    store: AuthStore | None = None

    def hook(reason: str) -> None:
        assert store is not None
        seen.append((reason, store.load_creds()))

    store = make_store("s1", before_creds_downgrade=hook)
    store.save_creds(registered_creds)
    store.save_creds(fresh_creds)
    assert seen == [("creds-downgrade", registered_creds)], "the hook saw the registered creds still in place"

    def failing(reason: str) -> None:
        raise OSError("no space for the snapshot")

    other = make_store("s2", before_creds_downgrade=failing)
    other.save_creds(registered_creds)
    with pytest.raises(StoreError, match=r"creds\.json was NOT changed"):
        other.save_creds(fresh_creds)
    assert other.load_creds() == registered_creds


def test_a_deleted_key_goes_to_the_trash_table_and_is_never_dropped(
    make_store: Callable[..., AuthStore], pool: ConnectionPool
) -> None:
    store = make_store()
    store.set_keys({"pre-key": {"1": '{"v":1}', "2": '{"v":2}'}})
    store.set_keys({"pre-key": {"1": None}})
    store.set_keys({"pre-key": {"1": '{"v":3}'}})
    store.set_keys({"pre-key": {"1": None, "9": None}})
    assert store.get_keys("pre-key", ["1", "2", "9"]) == {"1": None, "2": '{"v":2}', "9": None}
    assert store.list_keys() == [("pre-key", "2")]
    assert _rows(pool, "trash", "s1") == [("pre-key-1.json", b'{"v":1}'), ("pre-key-1.json", b'{"v":3}')]


def test_a_batch_with_one_bad_value_or_name_writes_nothing(
    make_store: Callable[..., AuthStore], pool: ConnectionPool
) -> None:
    store = make_store()
    with pytest.raises(StoreError):
        store.set_keys({"pre-key": {"1": '{"ok":1}', "2": "{not json"}})
    with pytest.raises(HostileNameError):
        store.set_keys({"pre-key": {"1": '{"ok":1}'}, "no-such-type": {"x": "{}"}})
    assert _rows(pool, "files", "s1") == []


def test_a_stale_epoch_is_refused_with_lease_lost_and_writes_nothing(
    make_store: Callable[..., AuthStore], pool: ConnectionPool
) -> None:
    old = make_store("s1", node="node-a")
    old.set_keys({"pre-key": {"1": '"a"'}})
    _expire(pool, "s1")
    new = make_store("s1", node="node-b")
    new.set_keys({"pre-key": {"1": '"b"'}})
    with pytest.raises(StoreError) as refused:
        old.set_keys({"pre-key": {"1": '"a-late"', "2": '"a-late"'}})
    assert refused.value.code == ErrorCode.LEASE_LOST
    assert "node-b" in str(refused.value) and "must stop the session" in str(refused.value)
    assert isinstance(refused.value.__cause__, LeaseLostError)
    assert _rows(pool, "files", "s1") == [("pre-key-1.json", b'"b"')]


def test_a_released_lease_refuses_writes(make_store: Callable[..., AuthStore], pool: ConnectionPool) -> None:
    store = make_store("s1")
    assert isinstance(store.backend, PgAuthBackend)
    with pool.connection() as conn:
        assert release_tenant(conn, "s1", "node-a", store.backend.epoch)
    with pytest.raises(StoreError) as refused:
        store.set_keys({"pre-key": {"1": '"x"'}})
    assert refused.value.code == ErrorCode.LEASE_LOST


def test_a_paused_node_cannot_overwrite_the_new_owner_even_while_it_keeps_writing(
    make_store: Callable[..., AuthStore], pool: ConnectionPool
) -> None:
    """The SIGSTOP case: the old owner writes in a loop while the tenant moves; after the move its writes lose."""
    old = make_store("s1", node="node-a")
    keys = [str(i) for i in range(10)]
    refusals: list[str] = []
    moved = threading.Event()
    stop = threading.Event()

    def old_owner_writes() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                old.set_keys({"session": {k: json.dumps(f"a-{n}") for k in keys}})
            except StoreError as exc:
                refusals.append(exc.code)
                if moved.is_set():
                    return

    writer = threading.Thread(target=old_owner_writes)
    writer.start()
    try:
        _expire(pool, "s1")
        new = make_store("s1", node="node-b")
        moved.set()
        new.set_keys({"session": {k: '"b"' for k in keys}})
        writer.join(timeout=60)
    finally:
        stop.set()
        writer.join()
    assert refusals and set(refusals) == {ErrorCode.LEASE_LOST}
    assert new.get_keys("session", keys) == {k: '"b"' for k in keys}


def test_writes_wait_for_a_restarting_database_and_nothing_acknowledged_is_lost(
    make_store: Callable[..., AuthStore], pg_server: PgServer
) -> None:
    store = make_store("s1")
    acknowledged: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writes() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                store.set_keys({"pre-key": {str(n): json.dumps({"n": n})}})
            except BaseException as exc:
                errors.append(exc)
                return
            acknowledged.append(n)

    writer = threading.Thread(target=writes)
    writer.start()
    try:
        while len(acknowledged) < 20:
            writer.join(timeout=0.05)
        pg_server.restart(mode="immediate")
        before = len(acknowledged)
        while len(acknowledged) < before + 20 and writer.is_alive():
            writer.join(timeout=0.05)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    ids = [str(n) for n in acknowledged]
    assert store.get_keys("pre-key", ids) == {str(n): json.dumps({"n": n}) for n in acknowledged}


def test_past_its_bound_a_write_fails_as_cluster_unavailable(
    make_store: Callable[..., AuthStore], pg_server: PgServer
) -> None:
    store = make_store("s1", write_wait=1.0)
    store.set_keys({"pre-key": {"1": '"kept"'}})
    pg_server.stop()
    try:
        with pytest.raises(StoreError) as failed:
            store.set_keys({"pre-key": {"2": '"never"'}})
        assert failed.value.code == ErrorCode.CLUSTER_UNAVAILABLE
        assert isinstance(failed.value.__cause__, ClusterUnavailableError)
    finally:
        pg_server.start()
    assert store.get_keys("pre-key", ["1", "2"]) == {"1": '"kept"', "2": None}


async def test_concurrent_async_writes_land_in_request_order(make_store: Callable[..., AuthStore]) -> None:
    store = AsyncAuthStore(make_store("s1"))
    await asyncio.gather(*(store.set_keys({"session": {"x": json.dumps(i)}}) for i in range(30)))
    assert await store.get_keys("session", ["x"]) == {"x": "29"}
