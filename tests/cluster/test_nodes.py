"""The node registry on a real PostgreSQL: nodes announce themselves with an internal URL and a
heartbeat whose expiry is the database's clock; a node that stops renewing is dead once its TTL
passed, a node that leaves is gone at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from bridge.cluster import nodes


@pytest.fixture
def conn(fresh_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_dsn, autocommit=True) as connection:
        nodes.ensure_schema(connection)
        yield connection


def test_a_registered_node_is_alive_with_its_url_and_others_see_it(conn: psycopg.Connection) -> None:
    nodes.register(conn, "a", "http://127.0.0.1:9001", ttl=30)
    nodes.register(conn, "b", "http://127.0.0.1:9002", ttl=30)

    assert [(n.node_id, n.url, n.alive) for n in nodes.live_nodes(conn)] == [
        ("a", "http://127.0.0.1:9001", True), ("b", "http://127.0.0.1:9002", True)]
    assert nodes.url_of(conn, "b") == "http://127.0.0.1:9002"
    assert nodes.url_of(conn, "nobody") is None


def test_a_node_that_stops_its_heartbeat_is_dead_after_its_ttl_by_the_database_clock(
    conn: psycopg.Connection,
) -> None:
    nodes.register(conn, "quiet", "http://127.0.0.1:9001", ttl=0.5)
    nodes.register(conn, "busy", "http://127.0.0.1:9002", ttl=0.5)
    deadline = time.monotonic() + 30
    while any(n.node_id == "quiet" for n in nodes.live_nodes(conn)):
        assert nodes.heartbeat(conn, "busy", ttl=0.5)
        assert time.monotonic() < deadline, "the silent node never expired"
        time.sleep(0.1)

    assert [n.node_id for n in nodes.live_nodes(conn)] == ["busy"]
    dead = [n for n in nodes.all_nodes(conn) if n.node_id == "quiet"]
    assert dead and not dead[0].alive and dead[0].expires_in <= 0
    assert nodes.url_of(conn, "quiet") is None


def test_a_node_that_leaves_is_gone_at_once_and_a_restart_registers_it_again(conn: psycopg.Connection) -> None:
    nodes.register(conn, "a", "http://127.0.0.1:9001", ttl=30)
    nodes.leave(conn, "a")
    assert nodes.all_nodes(conn) == []
    assert not nodes.heartbeat(conn, "a", ttl=30)  # the row is gone: the node must register again

    nodes.register(conn, "a", "http://127.0.0.1:9011", ttl=30)
    assert nodes.url_of(conn, "a") == "http://127.0.0.1:9011"
