"""Pytest fixtures for throwaway PostgreSQL and Redis servers on 127.0.0.1 (see ``tests.servers``).

Set ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` to use existing servers instead of
starting throwaway ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from expctl.adapters.crypto import BYOK_ENV
from expctl.adapters.store.db import connect, init_schema
from tests.servers import PostgresEndpoint, PostgresServer, RedisEndpoint, RedisServer
from tests.workspace import Workspace


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresEndpoint]:
    """A PostgreSQL server for the whole session: ``.url``, ``.create_database(name)``."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresEndpoint(external)
        return
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisEndpoint]:
    """A Redis server for the whole session: ``.url``, ``.flushdb()``."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield RedisEndpoint(external)
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


# The password of `password_redis`: tests that need a refused login use any other one.
REDIS_PASSWORD = "the-right-password"


@pytest.fixture(scope="session")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisEndpoint]:
    """A Redis that wants a password (not a canary): without the right one every command fails with NOAUTH."""
    with RedisServer(tmp_path_factory.mktemp("password-redis")) as server:
        with redis.Redis.from_url(server.url) as client:
            client.config_set("requirepass", REDIS_PASSWORD)
        yield server


@pytest.fixture
def db_url(pg_server: PostgresEndpoint) -> Iterator[str]:
    """URL of a brand-new empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def redis_url(redis_server: RedisEndpoint) -> str:
    """URL of a Redis database emptied just before the test."""
    redis_server.flushdb()
    return redis_server.url


@pytest.fixture
def ws(tmp_path: Path, db_url: str, redis_url: str, capsys: pytest.CaptureFixture[str],
       monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A repository with an initialised database and Redis, the CLI run in-process."""
    return Workspace(tmp_path, db_url, redis_url, capsys, monkeypatch)


@pytest.fixture
def db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database with the schema, and no connection settings leaking in from the environment."""
    for name in ("DATABASE_URL", "REDIS_URL", "CI", BYOK_ENV):
        monkeypatch.delenv(name, raising=False)
    with connect(db_url) as conn, conn.begin():
        init_schema(conn)
    return db_url
