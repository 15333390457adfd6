"""Connections to PostgreSQL (SQLAlchemy 2 Core on psycopg 3), schema init and error mapping.

Plain `postgresql://` URLs are accepted and run on psycopg 3. Connection errors become
`ConnectionFailed`; every URL and driver message shown goes through `expctl.core.redact`, so no password
(in the userinfo or in the query string) is ever printed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from expctl.adapters.store.tables import EXPCTL_TABLES, GATEWAY_TABLES, expctl_binding, metadata
from expctl.core.errors import ConfigError, ConnectionFailed, ExpctlError, LockTimeout
from expctl.core.lockinfo import ApplyLock, LockHolder, application_name, timeout_message, waiting_message
from expctl.core.plan import DEFAULT_SCOPE
from expctl.core.redact import redact_url, scrub_error

CONNECT_TIMEOUT_S = 10
APPLY_LOCK_KEY = 0x657870_63746C  # "expctl" in ASCII: one apply at a time per database
LOCK_NOT_AVAILABLE = "55P03"
# A run waiting for the apply lock says who holds it when it starts waiting and every 10 s after.
LOCK_NOTICE_EVERY_S = 10.0
# SQLSTATE prefixes of a lost server: connection exceptions, admin/crash shutdown, cannot connect now.
CONNECTION_LOST_STATES = ("08", "57P01", "57P02", "57P03")


class DatabaseError(ExpctlError):
    """PostgreSQL refused a statement (permissions, timeouts, a restart mid-run)."""


def normalize_url(url: str) -> str:
    """Accepts postgres://, postgresql:// and postgresql+psycopg:// URLs; always runs on psycopg 3."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    except (ArgumentError, ValueError):
        # Not chained: SQLAlchemy's message may quote a part of the URL (a port that is a password).
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {redact_url(url)}") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    return create_engine(
        normalize_url(url),
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "expctl"},
    )


def describe_db_error(err: DBAPIError, url: str) -> str:
    """First line of the driver's message, with the URL's secrets (and any URL or password it quotes)
    masked."""
    message = str(err.orig).strip().splitlines()[0] if err.orig is not None and str(err.orig).strip() else ""
    return scrub_error(message, [url]) if message else type(err).__name__


def error_from_db(err: DBAPIError, url: str, suffix: str = "") -> ExpctlError:
    """The typed error for a failed statement; only the driver's first line (SQLAlchemy's text would
    add statement parameters). A lock wait that timed out is `LockTimeout` (exit 5); a connection
    that went away (server restart or crash, network) is `ConnectionFailed`; the rest `DatabaseError`."""
    state = getattr(err.orig, "sqlstate", None)
    message = describe_db_error(err, url)
    if state == LOCK_NOT_AVAILABLE:
        return LockTimeout(f"gave up waiting for a lock held by another session (e.g. a row being edited in the "
                           f"admin UI): {message}{suffix}")
    if (state or "").startswith(CONNECTION_LOST_STATES) or (state is None and isinstance(err, OperationalError)):
        return ConnectionFailed(f"lost the connection to PostgreSQL at {redact_url(url)}: {message}{suffix}")
    return DatabaseError(f"PostgreSQL error (SQLSTATE {state or '?'}): {message}{suffix}")


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = make_engine(url)
    try:
        try:
            conn = engine.connect()
        except DBAPIError as err:  # refused, timed out, bad credentials, an option libpq rejects
            raise ConnectionFailed(
                f"cannot connect to PostgreSQL at {redact_url(url)}: {describe_db_error(err, url)}"
            ) from None
        with conn:
            try:
                yield conn
            except DBAPIError as err:
                raise error_from_db(err, url) from None
    finally:
        engine.dispose()


@contextmanager
def read_only(url: str) -> Iterator[Connection]:
    """A READ ONLY, REPEATABLE READ transaction: one consistent snapshot, no writes possible."""
    with connect(url) as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        try:
            yield conn
        finally:
            conn.rollback()


def init_schema(conn: Connection) -> tuple[list[str], list[str]]:
    """Creates the tables (and their indexes) that are missing, and adds to expctl's own binding
    table what older versions lacked (docs/design.md#tables-expctl-owns); never alters a gateway table.
    Returns (the tables created, what was added to existing ones)."""
    # Serialises concurrent inits (e.g. several reconciles on a fresh database).
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('expctl:db-init'))"))
    columns = _schema_columns(conn)
    missing = [t for t in (*GATEWAY_TABLES, *EXPCTL_TABLES) if t.name not in columns]
    metadata.create_all(conn, tables=missing, checkfirst=True)
    upgraded = []
    if expctl_binding.name in columns and _binding_outdated(columns):
        _upgrade_bindings(conn)
        upgraded.append(f"{expctl_binding.name} (added scope and applied; every binding kept, in scope "
                        f"{DEFAULT_SCOPE!r})")
    return [t.name for t in missing], upgraded


def _upgrade_bindings(conn: Connection) -> None:
    """Bindings made before scopes existed belong to the default scope; the key becomes (scope, name)."""
    conn.execute(text(f"ALTER TABLE expctl_binding ADD COLUMN IF NOT EXISTS scope text NOT NULL "
                      f"DEFAULT '{DEFAULT_SCOPE}'"))
    conn.execute(text("ALTER TABLE expctl_binding ADD COLUMN IF NOT EXISTS applied jsonb"))
    conn.execute(text("ALTER TABLE expctl_binding DROP CONSTRAINT IF EXISTS expctl_binding_pkey"))
    conn.execute(text("ALTER TABLE expctl_binding ADD PRIMARY KEY (scope, name)"))


def _schema_columns(conn: Connection) -> dict[str, set[str]]:
    """Table name -> its columns, for the tables expctl reads, in one query."""
    names = [t.name for t in (*GATEWAY_TABLES, *EXPCTL_TABLES)]
    # The catalog, not information_schema: that one hides tables the role has no privilege on.
    rows = conn.execute(text(
        "SELECT c.relname, a.attname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relname = ANY(:names) AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid)"),
        {"names": names})
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def _binding_outdated(columns: dict[str, set[str]]) -> bool:
    return not {"scope", "applied"} <= columns.get(expctl_binding.name, set())


def require_schema(conn: Connection) -> None:
    columns = _schema_columns(conn)
    missing = [t.name for t in (*GATEWAY_TABLES, *EXPCTL_TABLES) if t.name not in columns]
    if missing:
        raise ConfigError(f"the database lacks tables {', '.join(missing)}: run `expctl db init` first")
    if _binding_outdated(columns):
        raise ConfigError("expctl_binding was created by an older expctl (no scope column): run `expctl db init` "
                          "to add it; every binding is kept")


def take_apply_lock(conn: Connection, lock: ApplyLock) -> None:
    """The transaction-scoped advisory lock that serialises apply, reconcile and the Redis
    refresh after them.

    The run names itself (`application_name`, for this transaction only) so that others can say who
    holds the lock. When the lock is taken, it waits in slices of at most 10 s, and before each one
    tells `lock.on_wait` who holds the lock and how long it will still wait; past `lock.timeout_s`
    it raises `LockTimeout` naming the holder. Waiting inside PostgreSQL (not polling) wakes the run
    as soon as the lock is free, in the order the runs came.
    """
    conn.execute(text("SELECT set_config('application_name', :name, true)"), {"name": application_name(lock.tag)})
    if not _try_apply_lock(conn):
        deadline = time.monotonic() + lock.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(timeout_message(find_apply_lock_holder(conn), lock.timeout_s))
            if lock.on_wait is not None:
                lock.on_wait(waiting_message(find_apply_lock_holder(conn), left))
            if _wait_for_apply_lock(conn, min(left, LOCK_NOTICE_EVERY_S)):
                break
    # Row locks taken later in the transaction (a row being edited in the admin UI) wait as long.
    _set_lock_timeout(conn, lock.timeout_s)


def _set_lock_timeout(conn: Connection, seconds: float) -> None:
    # Rounded up and at least 1 ms: 0 would mean "wait for ever" to PostgreSQL.
    conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{max(math.ceil(seconds * 1000), 1)}ms"})


def _try_apply_lock(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": APPLY_LOCK_KEY}).scalar_one())


def _wait_for_apply_lock(conn: Connection, seconds: float) -> bool:
    """Waits up to `seconds` for the lock; False when it is still taken. The wait runs in a savepoint,
    so its timeout does not abort the transaction (a lock granted there stays with the transaction)."""
    _set_lock_timeout(conn, seconds)
    try:
        with conn.begin_nested():
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPLY_LOCK_KEY})
    except DBAPIError as err:
        if getattr(err.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        return False
    return True


# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
_HOLDER_QUERY = text("""
SELECT a.pid, a.application_name, a.xact_start,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS held_s
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = :high AND l.objid::bigint = :low
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
""")


def find_apply_lock_holder(conn: Connection) -> LockHolder | None:
    """The session holding the apply lock, or None when it was released meanwhile."""
    # pg_stat_activity is read once per transaction and cached: drop that copy to see the holder now.
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = conn.execute(_HOLDER_QUERY, {"high": APPLY_LOCK_KEY >> 32, "low": APPLY_LOCK_KEY & 0xFFFFFFFF}).first()
    if row is None:
        return None
    return LockHolder(int(row.pid), str(row.application_name or ""), row.xact_start,
                      float(row.held_s) if row.held_s is not None else None)
