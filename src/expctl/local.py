"""The embedded local instance: PostgreSQL and Redis under `.expctl/`, for newcomers and demos.

Started for one command and stopped when it ends, also on Ctrl-C and SIGTERM, so nothing is left
running. Data survives between commands: PostgreSQL keeps its data directory and Redis is saved
to `.expctl/redis/dump.rdb` before it stops. A local BYOK key is generated once, kept in
`.expctl/byok.key` (mode 600). One local command runs at a time (a file lock serialises them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis

from expctl.crypto import generate_byok_key
from expctl.errors import ConfigError
from expctl.servers import PostgresServer, RedisServer, ServerError
from expctl.store.db import connect, init_schema

STATE_DIR_NAME = ".expctl"
LOCK_WAIT_S = 120


@dataclass(frozen=True)
class LocalInstance:
    state_dir: Path
    database_url: str
    redis_url: str
    byok_key: str
    postgres_data_dir: Path


def _byok_key(state_dir: Path) -> str:
    path = state_dir / "byok.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_byok_key() + "\n")
    return path.read_text().strip()


@contextlib.contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    with open(state_dir / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            signal.alarm(LOCK_WAIT_S)  # bounded wait for the other local command
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            finally:
                signal.alarm(0)
        yield


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises SystemExit, so the `finally` blocks that stop the servers run."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _save_redis(url: str) -> None:
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url, socket_timeout=5) as client:
        client.save()


@contextlib.contextmanager
def local_instance(root: Path) -> Iterator[LocalInstance]:
    state_dir = root / STATE_DIR_NAME
    state_dir.mkdir(exist_ok=True)
    (state_dir / ".gitignore").write_text("*\n")
    with _sigterm_unwinds(), _exclusive(state_dir):
        pg = PostgresServer(state_dir / "postgres", ephemeral=False)
        cache = RedisServer(state_dir / "redis")
        try:
            pg.start()
            cache.start()
        except ServerError as err:
            pg.stop()
            cache.stop()
            raise ConfigError(f"could not start the embedded local instance: {err}") from None
        try:
            # Recorded so users (and tests) can find the data when it was relocated for root.
            (state_dir / "postgres-data-dir").write_text(f"{pg.real_data_dir}\n")
            with connect(pg.url) as conn, conn.begin():
                init_schema(conn)
            yield LocalInstance(state_dir, pg.url, cache.url, _byok_key(state_dir), pg.real_data_dir)
        finally:
            _save_redis(cache.url)
            cache.stop()
            pg.stop()
