"""Leases on a real PostgreSQL: one owner per tenant, epochs that only grow, the database's clock decides."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bridge.cluster.db import ClusterUnavailableError, open_async_pool, open_pool
from bridge.cluster.leases import Leases, database_now, list_leases
from bridge.cluster.schema import CORE, ensure_schema, schema_versions
from bridge.errors import ConfigError
from tests.cluster.pg import PgServer

TTL = 30.0


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[AsyncConnectionPool]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ensure_schema(conn)
    pool = await open_async_pool(fresh_dsn)
    try:
        yield pool
    finally:
        await pool.close()


async def _expire(pool: AsyncConnectionPool, session_id: str) -> None:
    """Age a lease as if its holder stopped renewing long ago (the database's clock is the judge)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE bridge_leases SET expires_at = now() - interval '1 hour', ttl = interval '1 microsecond' "
            "WHERE session_id = %s",
            (session_id,),
        )


def test_schema_creation_is_idempotent_and_safe_when_many_nodes_start_at_once(fresh_dsn: str) -> None:
    found: list[int] = []
    errors: list[BaseException] = []

    def start_node() -> None:
        try:
            with psycopg.connect(fresh_dsn, autocommit=True) as conn:
                found.append(ensure_schema(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_node) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(found) == [0] + [len(CORE)] * 5, "exactly one node created the schema"
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        assert schema_versions(conn) == {"core": len(CORE)}
        assert ensure_schema(conn) == len(CORE)


def test_a_database_with_a_newer_schema_is_refused(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("UPDATE bridge_schema SET version = version + 1 WHERE component = 'core'")
        with pytest.raises(ConfigError, match="upgrade this bridge"):
            ensure_schema(conn)


async def test_claims_take_unowned_tenants_up_to_the_limit_and_never_twice(pool: AsyncConnectionPool) -> None:
    a, b = Leases(pool, "node-a", TTL), Leases(pool, "node-b", TTL)
    assert await a.add_tenants([f"t{i}" for i in range(5)]) == 5
    assert await a.add_tenants(["t0"]) == 0
    won_a = await a.claim(3)
    won_b = await b.claim(10)
    assert len(won_a) == 3 and len(won_b) == 2
    assert {x.session_id for x in won_a}.isdisjoint(x.session_id for x in won_b)
    assert all(x.epoch == 1 and x.live for x in won_a + won_b)
    assert await a.claim(10) == []
    assert [x.node_id for x in await a.all_leases()].count("node-a") == 3


async def test_concurrent_claims_by_many_nodes_split_the_tenants_without_overlap(pool: AsyncConnectionPool) -> None:
    nodes = [Leases(pool, f"node-{i}", TTL) for i in range(4)]
    await nodes[0].add_tenants([f"t{i:02}" for i in range(40)])
    results = await asyncio.gather(*(node.claim(15) for node in nodes for _ in range(2)))
    claimed = [lease.session_id for won in results for lease in won]
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 40


async def test_an_expired_lease_moves_with_a_higher_epoch_and_the_old_holder_learns_it_lost(
    pool: AsyncConnectionPool,
) -> None:
    a, b = Leases(pool, "node-a", TTL), Leases(pool, "node-b", TTL)
    await a.add_tenants(["t1", "t2"])
    held = {x.session_id: x.epoch for x in await a.claim(2)}
    assert await b.claim(5) == [], "live leases are not claimable"
    await _expire(pool, "t1")
    owner = await a.owner("t1")
    assert owner is not None and owner.node_id == "node-a" and not owner.live
    taken = await b.claim(5)
    assert [(x.session_id, x.node_id, x.epoch) for x in taken] == [("t1", "node-b", 2)]
    result = await a.renew(held)
    assert result.lost == ["t1"]
    assert [x.session_id for x in result.renewed] == ["t2"]


async def test_renew_extends_every_held_lease_by_the_database_clock(pool: AsyncConnectionPool) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1", "t2", "t3"])
    first = {x.session_id: x for x in await a.claim(3)}
    result = await a.renew({s: x.epoch for s, x in first.items()})
    assert result.lost == []
    for lease in result.renewed:
        before = first[lease.session_id].expires_at
        assert lease.expires_at is not None and before is not None and lease.expires_at >= before
        assert lease.epoch == first[lease.session_id].epoch, "renewal never changes the epoch"


async def test_an_expired_lease_nobody_claimed_is_still_renewable_by_its_holder(pool: AsyncConnectionPool) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1"])
    (lease,) = await a.claim(1)
    await _expire(pool, "t1")
    result = await a.renew({"t1": lease.epoch})
    assert result.lost == [] and result.renewed[0].live


async def test_release_hands_a_tenant_over_at_once_and_epochs_only_grow(pool: AsyncConnectionPool) -> None:
    a, b = Leases(pool, "node-a", TTL), Leases(pool, "node-b", TTL)
    await a.add_tenants(["t1"])
    epochs = []
    for _ in range(3):
        (mine,) = await a.claim(1)
        assert await b.release({"t1": mine.epoch}) == [], "only the holder can release"
        assert await a.release({"t1": mine.epoch}) == ["t1"]
        (theirs,) = await b.claim(1)
        assert await b.release({"t1": theirs.epoch}) == ["t1"]
        epochs += [mine.epoch, theirs.epoch]
    assert epochs == sorted(set(epochs)) == list(range(1, 7))
    owner = await a.owner("t1")
    assert owner is not None and owner.node_id is None and owner.epoch == 6 and not owner.live


async def test_a_stale_epoch_can_neither_renew_nor_release(pool: AsyncConnectionPool) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1"])
    (old,) = await a.claim(1)
    await _expire(pool, "t1")
    (new,) = await a.claim(1)
    assert new.epoch == old.epoch + 1
    assert (await a.renew({"t1": old.epoch})).lost == ["t1"]
    assert await a.release({"t1": old.epoch}) == []
    assert (await a.renew({"t1": new.epoch})).lost == []


async def test_database_downtime_is_not_counted_against_a_holder(pool: AsyncConnectionPool) -> None:
    """An expired lease stays with its holder until one ttl has passed since the database started."""
    a, b = Leases(pool, "node-a", TTL), Leases(pool, "node-b", TTL)
    await a.add_tenants(["t1"])
    await a.claim(1)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE bridge_leases SET expires_at = now() - interval '1 second', "
            "ttl = (now() - pg_postmaster_start_time()) + interval '1 hour'"
        )
    assert await b.claim(1) == [], "the database started less than a ttl ago: the holder may still renew"
    await _expire(pool, "t1")
    assert [x.node_id for x in await b.claim(1)] == ["node-b"]


async def test_claim_can_be_restricted_to_named_tenants(pool: AsyncConnectionPool) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1", "t2", "t3"])
    assert [x.session_id for x in await a.claim(5, only=["t2", "nope"])] == ["t2"]


async def test_the_sync_listing_matches_and_uses_the_database_clock(pool: AsyncConnectionPool, fresh_dsn: str) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1", "t2"])
    await a.claim(1)
    sync_pool = open_pool(fresh_dsn, max_size=1)
    try:
        with sync_pool.connection() as conn:
            listed = list_leases(conn)
            now = database_now(conn)
    finally:
        sync_pool.close()
    assert listed == await a.all_leases()
    assert [x.live for x in listed] == [True, False]
    assert listed[0].expires_at is not None and listed[0].expires_at > now


async def test_an_unreachable_database_is_a_clear_error(pool: AsyncConnectionPool, pg_server: PgServer) -> None:
    a = Leases(pool, "node-a", TTL)
    await a.add_tenants(["t1"])
    pg_server.stop()
    try:
        with pytest.raises(ClusterUnavailableError, match="claiming tenants"):
            await a.claim(1)
    finally:
        pg_server.start()
    assert len(await a.claim(1)) == 1, "the pool reconnects once the database is back"


async def test_a_claim_by_name_waits_for_an_in_flight_write_while_a_general_claim_skips_it(
    pool: AsyncConnectionPool, fresh_dsn: str
) -> None:
    a, b = Leases(pool, "node-a", TTL), Leases(pool, "node-b", TTL)
    await a.add_tenants(["t1"])
    (old,) = await a.claim(1)
    await _expire(pool, "t1")
    async with await psycopg.AsyncConnection.connect(fresh_dsn) as writer:
        await writer.execute("SELECT 1 FROM bridge_leases WHERE session_id = 't1' FOR SHARE")  # a fenced write
        assert await b.claim(5) == [], "a general claim skips the row instead of waiting"
        by_name = asyncio.create_task(b.claim(1, only=["t1"]))
        async with pool.connection() as conn:
            for _ in range(1000):
                cursor = await conn.execute(
                    "SELECT wait_event_type, state, query FROM pg_stat_activity WHERE datname = current_database()"
                )
                rows = await cursor.fetchall()
                if any(r[0] == "Lock" for r in rows) or by_name.done():
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"the claim by name never waited: {rows}")
        assert not by_name.done()
        await writer.commit()
    (won,) = await by_name
    assert (won.node_id, won.epoch) == ("node-b", old.epoch + 1)
