"""The creds history of a cluster tenant lives in PostgreSQL, written in the fenced creds commit, so a
tenant that moves to another node has its history there, and listing, finding intact creds, putting
them back and the downgrade guard work the same from any node.

Each node is what a bridge node builds for a tenant it holds: `AuthStore` over `PgAuthBackend` with
the lease's epoch, the snapshot hook in the database, no history on the node's disk. A hand-over is
what the coordinator does: release the lease, the other node claims it (epoch + 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from bridge.cluster.auth_backend import PgAuthBackend
from bridge.cluster.creds_history import PgCredsHistory
from bridge.cluster.db import LeaseLostError
from bridge.cluster.leases import add_tenant, claim_tenant, release_tenant
from bridge.cluster.operator import operator_hold
from bridge.cluster.session_snapshots import SessionSnapshots
from bridge.cluster.snapshots import PgSnapshots
from bridge.errors import CredsCorruptError, ErrorCode, StoreError
from bridge.store.auth_store import DOWNGRADE_REASON, AuthStore
from bridge.store.identity import identity_of
from bridge.store.layout import CREDS_FILE

TTL = 30.0


def _gen(base: str, counter: int, **extra: Any) -> str:
    """A later generation of the same creds (Baileys bumps counters like this on creds.update)."""
    return json.dumps(dict(json.loads(base), accountSyncCounter=counter, **extra))


def _claim(pool: ConnectionPool, sid: str, node: str) -> int:
    with pool.connection() as conn:
        add_tenant(conn, sid)
        lease = claim_tenant(conn, sid, node, TTL)
    assert lease is not None, f"{node} could not claim {sid}"
    return lease.epoch


def _node_store(pool: ConnectionPool, root: Path, sid: str, node: str, epoch: int, keep: int = 20) -> AuthStore:
    """The tenant's store as node `node` builds it (its own scratch folder under `root`)."""
    backend = PgAuthBackend(pool, sid, node_id=node, epoch=epoch, history_keep=keep)
    return AuthStore(
        root / node / sid,
        session_id=sid,
        bridge_dir=root / node / ".bridge",
        before_creds_downgrade=PgSnapshots(pool).downgrade_hook(sid),
        backend=backend,
        keep_creds_history=False,
    )


def _texts(pool: ConnectionPool, sid: str) -> list[str]:
    return [e.data.decode() for e in PgCredsHistory(pool).entries(sid)]


def test_creds_saved_on_node_a_are_in_the_history_node_b_sees_after_a_hand_over(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str
) -> None:
    history = PgCredsHistory(pool)
    epoch_a = _claim(pool, "t1", "node-a")
    on_a = _node_store(pool, tmp_path, "t1", "node-a", epoch_a)
    saved = [_gen(registered_creds, n) for n in range(3)]
    for text in saved:
        on_a.save_creds(text)
    on_a.set_keys({"pre-key": {"1": '{"k":1}'}})
    on_a.close()
    with pool.connection() as conn:  # node A hands the tenant over
        assert release_tenant(conn, "t1", "node-a", epoch_a)
    epoch_b = _claim(pool, "t1", "node-b")
    assert epoch_b == epoch_a + 1

    entries = history.entries("t1")
    assert [e.data.decode() for e in entries] == saved[::-1], "node B sees every creds node A saved, newest first"
    assert {(e.node_id, e.epoch) for e in entries} == {("node-a", epoch_a)}
    assert not (tmp_path / "node-a" / ".bridge" / "creds-history").exists(), "nothing on node A's disk"

    on_b = _node_store(pool, tmp_path, "t1", "node-b", epoch_b)
    on_b.save_creds(_gen(registered_creds, 3))
    assert _texts(pool, "t1") == [_gen(registered_creds, n) for n in (3, 2, 1, 0)]
    assert history.entries("t1")[0].node_id == "node-b" and history.entries("t1")[0].epoch == epoch_b

    identity = identity_of(json.loads(registered_creds))
    found = SessionSnapshots(pool, "node-b", {"t1": epoch_b}.get).newest_intact_creds("t1", identity)
    assert found is not None
    assert found[0] == _gen(registered_creds, 3) and "creds history bridge_creds_history/t1/" in found[1]
    listing = entries[0].describe()
    assert listing["registered"] and listing["valid"] and listing["node"] == "node-a"
    assert registered_creds not in json.dumps(listing), "a listing never shows the creds themselves"


def test_node_b_puts_back_creds_node_a_saved_keys_untouched_and_the_replaced_creds_stay_restorable(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str
) -> None:
    history = PgCredsHistory(pool)
    epoch_a = _claim(pool, "t2", "node-a")
    on_a = _node_store(pool, tmp_path, "t2", "node-a", epoch_a)
    on_a.save_creds(_gen(registered_creds, 1))
    on_a.set_keys({"pre-key": {"1": '{"k":1}', "2": '{"k":2}'}})
    on_a.save_creds(_gen(registered_creds, 2))
    with pool.connection() as conn:
        release_tenant(conn, "t2", "node-a", epoch_a)
    epoch_b = _claim(pool, "t2", "node-b")
    backend_b = PgAuthBackend(pool, "t2", node_id="node-b", epoch=epoch_b)

    older = next(e for e in history.entries("t2") if e.data.decode() == _gen(registered_creds, 1))
    assert history.restore(backend_b, older.sha256[:12]).sha256 == older.sha256
    state = backend_b.read([CREDS_FILE, "pre-key-1.json", "pre-key-2.json"])
    assert state == {CREDS_FILE: _gen(registered_creds, 1).encode(), "pre-key-1.json": b'{"k":1}',
                     "pre-key-2.json": b'{"k":2}'}
    assert _texts(pool, "t2")[:2] == [_gen(registered_creds, 1), _gen(registered_creds, 2)], (
        "the restored creds are the newest entry and the ones they replaced are still kept"
    )

    with pytest.raises(StoreError) as unknown:
        history.restore(backend_b, "ffff")
    assert unknown.value.code == ErrorCode.NOT_FOUND
    stale = PgAuthBackend(pool, "t2", node_id="node-a", epoch=epoch_a)
    with pytest.raises(LeaseLostError):
        history.restore(stale, older.sha256)
    assert backend_b.read([CREDS_FILE])[CREDS_FILE] == _gen(registered_creds, 1).encode()


def test_a_stale_node_can_neither_change_the_creds_nor_the_history(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str
) -> None:
    epoch_a = _claim(pool, "t3", "node-a")
    on_a = _node_store(pool, tmp_path, "t3", "node-a", epoch_a)
    on_a.save_creds(_gen(registered_creds, 1))
    with pool.connection() as conn:  # node A stalls past its lease; node B takes over
        conn.execute("UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '0 seconds' "
                     "WHERE session_id = 't3'")
    epoch_b = _claim(pool, "t3", "node-b")
    _node_store(pool, tmp_path, "t3", "node-b", epoch_b).save_creds(_gen(registered_creds, 2))
    before = _texts(pool, "t3")

    with pytest.raises(StoreError) as refused:
        on_a.save_creds(_gen(registered_creds, 99))
    assert refused.value.code == ErrorCode.LEASE_LOST
    assert _texts(pool, "t3") == before == [_gen(registered_creds, 2), _gen(registered_creds, 1)]


def test_the_downgrade_guard_on_node_b_snapshots_the_linked_creds_node_a_saved(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str, fresh_creds: str
) -> None:
    epoch_a = _claim(pool, "t4", "node-a")
    _node_store(pool, tmp_path, "t4", "node-a", epoch_a).save_creds(registered_creds)
    with pool.connection() as conn:
        release_tenant(conn, "t4", "node-a", epoch_a)
    epoch_b = _claim(pool, "t4", "node-b")

    _node_store(pool, tmp_path, "t4", "node-b", epoch_b).save_creds(fresh_creds)  # a re-link on node B
    snapshots = PgSnapshots(pool).newest_first("t4")
    assert [(m.reason, m.registered) for m in snapshots] == [(DOWNGRADE_REASON, True)]
    assert _texts(pool, "t4") == [fresh_creds, registered_creds], "the linked creds stay in the history too"
    identity = identity_of(json.loads(registered_creds))
    found = PgCredsHistory(pool).newest_intact("t4", identity)
    assert found is not None and found[0] == registered_creds


def test_the_history_is_bounded_a_text_seen_again_moves_to_the_front_and_imports_keep_what_they_replace(
    pool: ConnectionPool, tmp_path: Path, registered_creds: str
) -> None:
    epoch = _claim(pool, "t5", "node-a")
    store = _node_store(pool, tmp_path, "t5", "node-a", epoch, keep=3)
    for n in range(6):
        store.save_creds(_gen(registered_creds, n))
    assert _texts(pool, "t5") == [_gen(registered_creds, n) for n in (5, 4, 3)]
    store.save_creds(_gen(registered_creds, 4))
    assert _texts(pool, "t5") == [_gen(registered_creds, n) for n in (4, 5, 3)]
    with pool.connection() as conn:
        release_tenant(conn, "t5", "node-a", epoch)

    with operator_hold(pool, "t5", "import") as backend:  # creds written outside AuthStore
        backend.commit({CREDS_FILE: _gen(registered_creds, 7).encode()}, [])
    assert _texts(pool, "t5") == [_gen(registered_creds, n) for n in (7, 4, 5, 3)], (
        "the import's creds are the newest; the operator's backend keeps the default 20, so nothing went"
    )


def test_an_entry_without_valid_creds_is_never_put_back(pool: ConnectionPool, registered_creds: str) -> None:
    epoch = _claim(pool, "t6", "node-a")
    backend = PgAuthBackend(pool, "t6", node_id="node-a", epoch=epoch)
    backend.commit({CREDS_FILE: b'{"not": "creds"}'}, [])  # bytes AuthStore would refuse, written raw
    backend.commit({CREDS_FILE: registered_creds.encode()}, [])
    broken = next(e for e in PgCredsHistory(pool).entries("t6") if e.creds() is None)
    with pytest.raises(CredsCorruptError):
        PgCredsHistory(pool).restore(backend, broken.sha256)
    assert backend.read([CREDS_FILE])[CREDS_FILE] == registered_creds.encode()
