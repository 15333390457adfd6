"""Runs the `expctl` command line with round-trip counters: `python -m bench.probe OUT.json -- ARGS…`.

It is `expctl ARGS…` (the same `expctl.cli.main` the console script calls) plus three hooks whose
cost is a few dictionary updates per statement:

- SQLAlchemy `before/after_cursor_execute` on every Engine: statements sent (one per cursor
  execution; an executemany counts once, and its batches and rows are recorded besides) and the
  time spent inside them;
- psycopg `Cursor.copy`: the COPY statements the apply's bulk inserts use (SQLAlchemy does not see
  them), counted and timed the same way, the rows streamed included;
- redis-py `Connection.send_packed_command`: socket writes, i.e. Redis round trips (a pipeline is
  one; the commands themselves are counted by the runner from the server's INFO commandstats);
- a phase clock: when the first SQL statement was sent and when the process ended.

The counters are written to OUT.json when the process exits (the CLI ends with `sys.exit`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

START = time.perf_counter()


class Counters:
    def __init__(self) -> None:
        self.sql_statements = 0
        self.sql_executemany = 0
        self.sql_executemany_rows = 0
        self.sql_seconds = 0.0
        self.sql_first_at: float | None = None
        self.sql_by_verb: Counter[str] = Counter()
        self.redis_round_trips = 0
        self._started: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "sql_statements": self.sql_statements,
            "sql_executemany": self.sql_executemany,
            "sql_executemany_rows": self.sql_executemany_rows,
            "sql_seconds": round(self.sql_seconds, 4),
            "sql_by_verb": dict(self.sql_by_verb),
            "first_sql_at_s": None if self.sql_first_at is None else round(self.sql_first_at - START, 4),
            "process_s": round(time.perf_counter() - START, 4),
            "redis_round_trips": self.redis_round_trips,
        }


COUNTERS = Counters()


def install() -> None:
    """Hooks SQLAlchemy and redis-py; imported lazily so the hooks add no import of their own."""
    import psycopg  # noqa: PLC0415
    import redis.connection  # noqa: PLC0415
    from sqlalchemy import event  # noqa: PLC0415
    from sqlalchemy.engine import Engine  # noqa: PLC0415

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        now = time.perf_counter()
        COUNTERS._started = now
        if COUNTERS.sql_first_at is None:
            COUNTERS.sql_first_at = now
        COUNTERS.sql_statements += 1
        COUNTERS.sql_by_verb[statement.lstrip().split(None, 1)[0].upper()] += 1
        if executemany:
            COUNTERS.sql_executemany += 1
            COUNTERS.sql_executemany_rows += len(parameters)

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if COUNTERS._started is not None:
            COUNTERS.sql_seconds += time.perf_counter() - COUNTERS._started
            COUNTERS._started = None

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)

    copy = psycopg.Cursor.copy

    @contextlib.contextmanager
    def counted_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        before(None, self, "COPY", None, None, False)
        try:
            with copy(self, statement, *args, **kwargs) as stream:
                yield stream
        finally:
            after(None, self, "COPY", None, None, False)

    psycopg.Cursor.copy = counted_copy  # type: ignore[method-assign]

    connection_class: Any = redis.connection.Connection
    send_packed = connection_class.send_packed_command

    def counted_packed(self: Any, command: Any, check_health: bool = True) -> None:
        COUNTERS.redis_round_trips += 1
        send_packed(self, command, check_health)

    connection_class.send_packed_command = counted_packed


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m bench.probe OUT.json -- EXPCTL-ARGS...")
    out, args = argv[0], argv[2:]

    def write() -> None:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(COUNTERS.record(), handle)

    atexit.register(write)
    install()
    from expctl.cli import main as expctl_main  # noqa: PLC0415

    sys.argv = ["expctl", *args]
    expctl_main(args)


if __name__ == "__main__":
    main(sys.argv[1:])
