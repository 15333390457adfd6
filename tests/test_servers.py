"""The tests' throwaway PostgreSQL and Redis (`tests/servers.py`) answer, stay isolated, restart and stop cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import redis

from tests.servers import PostgresServer, RedisServer


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("run", [1, 2])
def test_db_url_is_new_and_empty(db_url: str, run: int) -> None:
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute(f"CREATE TABLE leftover_{run} (x int)")


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_is_flushed(redis_url: str, run: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("leftover", run)


def test_postgres_restarts_on_its_data_and_port_and_stops_every_process() -> None:
    with PostgresServer() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        pid, port = server.pid, server.port
        children = _children(pid)
        assert children, "the postmaster has background workers"
        server.stop()
        assert not server.running and _gone(pid) and all(_gone(child) for child in children)
        server.stop()  # idempotent
        server.start()
        assert server.port == port
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)
        pid = server.pid
    assert _gone(pid) and not server.folder.exists()


def test_redis_stops(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server, redis.Redis.from_url(server.url) as client:
        pid = int(client.info("server")["process_id"])
        assert client.ping()
    assert _gone(pid)
