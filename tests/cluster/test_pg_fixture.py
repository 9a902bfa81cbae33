"""The test PostgreSQL itself: it answers, survives a restart with its data, and leaves nothing behind."""

from __future__ import annotations

import os
import pwd

import psycopg

from tests.cluster.pg import UNPRIVILEGED_USER, PgServer, start_server


def test_the_server_answers_and_runs_as_an_unprivileged_user(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.dsn) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int, current_setting('port')::int").fetchone()
    assert row is not None
    assert row[0] >= 150000
    assert row[1] == pg_server.port
    pid = pg_server.postmaster_pid()
    assert pid is not None
    owner = os.stat(f"/proc/{pid}").st_uid
    assert owner != 0, "PostgreSQL must never run as root"
    if os.geteuid() == 0:
        assert owner == pwd.getpwnam(UNPRIVILEGED_USER).pw_uid


def test_data_survives_a_restart(fresh_dsn: str, pg_server: PgServer) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    pg_server.restart()
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]


def test_destroy_stops_the_server_and_removes_its_folder() -> None:
    server = start_server()
    pid = server.postmaster_pid()
    assert pid is not None and server.is_running()
    server.destroy()
    assert not server.is_running()
    assert not server.root.exists()
