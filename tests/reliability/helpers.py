"""Tools shared by the reliability scenarios: CLI subprocesses, state snapshots, lock checks, fake servers.

A "logical state" is what a user can observe of the gateway's tables with the random ids and the
timestamps left out: per experiment its fields, per variant its weight, its current upstream, its
current key (decrypted) and how many versions it has. Two runs that did the same work have equal
logical states; a duplicated row or version, a lost write or a half-applied run does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from expctl.adapters.crypto import decrypt_api_key, parse_byok_key
from expctl.adapters.store.db import normalize_url
from tests.workspace import BYOK_B64, MEMBERSHIP_KEY

BYOK = parse_byok_key(BYOK_B64)
ADMIN = "admin-ui"  # created_by of the version rows the tests insert "as the admin UI"
GATEWAY_TABLES = ("model_experiment", "model_experiment_variant", "model_experiment_variant_version")


def plain_url(url: str) -> str:
    """The libpq form of a database URL (psycopg does not take SQLAlchemy's driver suffix)."""
    return normalize_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def sql(db_url: str, query: str, params: Mapping[str, Any] | tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
    """Runs one autocommitted statement on a connection of our own (not named `expctl`)."""
    with psycopg.connect(plain_url(db_url), autocommit=True, application_name="reliability-test",
                         connect_timeout=10) as conn:
        cur = conn.execute(query, params)
        if cur.description is None:
            return []
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- subprocesses ---------------------------------------------------------------------------------


def child_env(secrets: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of an `expctl` subprocess: no stray connection settings, the given secrets."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CI", "EXPCTL_DEBUG") and not k.startswith("PG")}
    # GITHUB_SHA: the audit row needs no `git` child, so a SIGKILL leaves no orphan behind.
    env.update(BYOK_ENCRYPTION_KEY=BYOK_B64, EXPCTL_ACTOR="reliability", GITHUB_SHA="0" * 40, **secrets)
    env.update(extra)
    return env


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float


@dataclass
class Proc:
    """An `expctl` subprocess in its own process group, its output in files (never a full pipe)."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, timeout: float = 120) -> Outcome:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return Outcome(code, self.out_path.read_text(errors="replace"), self.err_path.read_text(errors="replace"),
                       time.monotonic() - self.started)

    def kill(self) -> None:
        """SIGKILL to the whole process group we created (the process and any child of it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)


_counter = iter(range(1_000_000))


def spawn(cwd: Path, args: list[str], env: Mapping[str, str], logs: Path) -> Proc:
    """`python -m expctl ARGS` in `cwd`, started now."""
    logs.mkdir(parents=True, exist_ok=True)
    n = next(_counter)
    out_path, err_path = logs / f"{n}.out", logs / f"{n}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = subprocess.Popen([sys.executable, "-m", "expctl", *args], cwd=cwd, env=dict(env), stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    return Proc(popen, out_path, err_path, time.monotonic())


def reconcile_args(db_url: str, redis_url: str | None, *more: str) -> list[str]:
    args = ["reconcile", "--auto-approve", "--database-url", db_url, *more]
    return [*args, "--redis-url", redis_url] if redis_url else [*args, "--skip-cache"]


# --- PostgreSQL sessions and locks ----------------------------------------------------------------


def expctl_backends(db_url: str) -> list[dict[str, Any]]:
    """Sessions an expctl process holds on this database (expctl names its connections `expctl`, and
    `expctl|<command>|…` for a transaction that takes the apply lock)."""
    return sql(db_url, "SELECT pid, state, xact_start FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE 'expctl%' AND pid <> pg_backend_pid()")


def wait_backends_gone(db_url: str, timeout: float = 20.0) -> float:
    """Bounded poll until PostgreSQL has ended the sessions of a dead client; returns the wait."""
    start = time.monotonic()
    while expctl_backends(db_url):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"expctl sessions still alive after {timeout}s: {expctl_backends(db_url)}")
        time.sleep(0.02)
    return time.monotonic() - start


def advisory_locks(db_url: str) -> list[dict[str, Any]]:
    return sql(db_url, "SELECT pid, granted, objid FROM pg_locks WHERE locktype = 'advisory' AND database = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database())")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- state snapshots ------------------------------------------------------------------------------


def exact_dump(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the gateway's tables and of the bindings, ids and timestamps included."""
    dump = {t: sql(db_url, f"SELECT * FROM {t} ORDER BY id") for t in GATEWAY_TABLES}
    dump["expctl_binding"] = sql(db_url, "SELECT * FROM expctl_binding ORDER BY name")
    return dump


def _versions(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Each variant's version rows, oldest first; the last is the current one (none is future-dated)."""
    rows = sql(db_url, "SELECT id::text AS id, variant_id::text AS variant_id, upstream, encrypted_api_key, "
                       "created_by, effective_at <= now() AS effective FROM model_experiment_variant_version vv "
                       "ORDER BY vv.variant_id, vv.effective_at, vv.id")
    by_variant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        assert row["effective"], f"a version is dated in the future: {row['id']}"
        by_variant[row["variant_id"]].append(row)
    return by_variant


def logical_state(db_url: str) -> dict[str, Any]:
    """The observable state without ids and timestamps (see the module docstring)."""
    versions = _versions(db_url)
    variants: dict[str, dict[str, Any]] = defaultdict(dict)
    for v in sql(db_url, "SELECT id::text AS id, experiment_id::text AS experiment_id, label, weight "
                         "FROM model_experiment_variant"):
        history = versions.get(v["id"], [])
        current = history[-1] if history else None
        variants[v["experiment_id"]][v["label"]] = {
            "weight": v["weight"], "versions": len(history),
            "upstream": current["upstream"] if current else None,
            "key": decrypt_api_key(BYOK, current["encrypted_api_key"]) if current else None,
        }
    state: dict[str, Any] = {}
    for e in sql(db_url, "SELECT e.id::text AS id, b.name AS managed, e.public_model_id, e.name, e.description, "
                         "e.status, e.is_archived, e.started_at IS NOT NULL AS started, "
                         "e.ended_at IS NOT NULL AS ended FROM model_experiment e "
                         "LEFT JOIN expctl_binding b ON b.experiment_id = e.id"):
        key = e.pop("managed") or f"unmanaged:{e['public_model_id']}:{e['name']}:{e['id']}"
        state[key] = {**{k: v for k, v in e.items() if k != "id"}, "variants": variants.get(e["id"], {})}
    return state


def assert_matches_manifests(db_url: str, manifests: list[dict[str, Any]], secrets: Mapping[str, str]) -> None:
    """Every manifest is bound to exactly one row that says what the manifest says."""
    state = logical_state(db_url)
    managed = {k: v for k, v in state.items() if not k.startswith("unmanaged:")}
    assert sorted(managed) == sorted(m["name"] for m in manifests), (sorted(managed), [m["name"] for m in manifests])
    for m in manifests:
        row = managed[m["name"]]
        want = {"public_model_id": m["public_model_id"], "name": m["display_name"],
                "description": m.get("description"), "status": m["status"], "is_archived": m.get("archived", False)}
        assert {k: row[k] for k in want} == want, (m["name"], row)
        assert row["started"] == (m["status"] != "draft"), (m["name"], row)
        assert row["ended"] == (m["status"] == "completed"), (m["name"], row)
        want_variants = {v["label"]: (v["weight"], v["upstream"]) for v in m["variants"]}
        assert {label: (v["weight"], v["upstream"]) for label, v in row["variants"].items()} == want_variants, m["name"]
        if m["status"] != "completed":  # completed: secrets never compared (docs/design.md#secret-references)
            for v in m["variants"]:
                assert row["variants"][v["label"]]["key"] == secrets[v["api_key"]["from_env"]], (m["name"], v["label"])


def assert_no_redundant_versions(db_url: str) -> int:
    """No version written by expctl repeats the one before it (what a duplicated hot-swap would leave).

    Returns the number of versions checked."""
    checked = 0
    for history in _versions(db_url).values():
        previous: tuple[Any, str] | None = None
        for row in history:
            this = (row["upstream"], decrypt_api_key(BYOK, row["encrypted_api_key"]))
            if row["created_by"] != ADMIN:
                assert this != previous, f"version {row['id']} repeats the previous one"
            previous = this
            checked += 1
    return checked


def assert_no_duplicates(db_url: str) -> None:
    """One row per binding and per (experiment, label); every managed experiment bound once."""
    assert sql(db_url, "SELECT experiment_id FROM expctl_binding GROUP BY experiment_id HAVING count(*) > 1") == []
    assert sql(db_url, "SELECT experiment_id, label FROM model_experiment_variant "
                       "GROUP BY experiment_id, label HAVING count(*) > 1") == []
    assert sql(db_url, "SELECT public_model_id FROM model_experiment WHERE status IN ('active', 'paused') "
                       "GROUP BY public_model_id HAVING count(*) > 1") == []


def routed_ids(db_url: str) -> list[str]:
    rows = sql(db_url, "SELECT DISTINCT public_model_id AS id FROM model_experiment "
                       "WHERE status IN ('active', 'paused')")
    return sorted(r["id"] for r in rows)


def membership(redis_url: str) -> list[str] | None:
    with redis.Redis.from_url(redis_url) as client:
        raw = client.get(MEMBERSHIP_KEY)
    return None if raw is None else list(json.loads(raw))


def redis_everything(redis_url: str) -> bytes:
    """All keys and values of the Redis database, as one blob to search for canaries."""
    with redis.Redis.from_url(redis_url) as client:
        return b"".join(k + b"=" + (client.dump(k) or b"") + b"\n" for k in client.keys("*"))


# --- fake Redis servers ---------------------------------------------------------------------------


class FakeRedis:
    """A TCP server on 127.0.0.1 that either never answers (`silent`) or answers every command
    with `-ERR …` (a Redis that returns errors). Runs in a daemon thread; a context manager."""

    def __init__(self, mode: str) -> None:
        assert mode in ("silent", "error")
        self.mode = mode
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.connections = 0
        self.commands = 0
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeRedis:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for client in self._clients:
            client.close()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._clients.append(client)
            if self.mode == "error":
                threading.Thread(target=self._answer_errors, args=(client,), daemon=True).start()

    def _answer_errors(self, client: socket.socket) -> None:
        buffer = b""
        client.settimeout(0.2)
        while not self._stop.is_set():
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            n, buffer = _complete_commands(buffer)
            self.commands += n
            with contextlib.suppress(OSError):
                client.sendall(b"-ERR injected failure\r\n" * n)


def _complete_commands(buffer: bytes) -> tuple[int, bytes]:
    """How many whole RESP commands `buffer` starts with, and what is left after them."""
    count = 0
    while True:
        end = _command_end(buffer)
        if end is None:
            return count, buffer
        count, buffer = count + 1, buffer[end:]


def _command_end(buffer: bytes) -> int | None:
    if not buffer.startswith(b"*"):
        line_end = buffer.find(b"\r\n")  # an inline command
        return None if line_end < 0 else line_end + 2
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        return None
    pos, items = line_end + 2, int(buffer[1:line_end])
    for _ in range(items):
        header_end = buffer.find(b"\r\n", pos)
        if header_end < 0:
            return None
        size = int(buffer[pos + 1:header_end])
        pos = header_end + 2 + size + 2
        if pos > len(buffer):
            return None
    return pos


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 nothing listens on (bound without listen(), so nobody else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


def local_tcp_ports(pid: int) -> set[int]:
    """Local ports of the TCP sockets process `pid` holds (Linux /proc), to tell which of several
    clients a PostgreSQL session (pg_stat_activity.client_port) belongs to."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def lock_holder_port(db_url: str) -> int | None:
    """The client port of the expctl session that holds the apply lock, if one does."""
    rows = sql(db_url, "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'expctl%' "
                       "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return int(rows[0]["client_port"]) if rows else None
