"""Round trips do not grow with the number of experiments (docs/design.md#scale).

Runs the same commands on 5 and on 50 experiments against a real PostgreSQL and Redis and
compares what they sent: SQL statements (every cursor execution seen by SQLAlchemy's
`before_cursor_execute` on all engines, and every psycopg COPY, which SQLAlchemy does not see; an
executemany counts once per parameter set, because the server runs the statement once per row) and
Redis round trips (socket writes of redis-py: a pipeline is one). Both must be the same for N=5 and
N=50, and the apply must send its rows by COPY.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.connection
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.servers import PostgresEndpoint
from tests.workspace import UPSTREAM_A, UPSTREAM_B, Workspace, manifest

SMALL, LARGE = 5, 50


@dataclass
class Trips:
    sql: int = 0
    redis: int = 0
    verbs: Counter[str] = field(default_factory=Counter)

    def key(self) -> tuple[int, int, dict[str, int]]:
        return self.sql, self.redis, dict(sorted(self.verbs.items()))


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trips]:
    trips = Trips()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        rows = len(parameters) if executemany else 1
        trips.sql += rows
        trips.verbs[statement.lstrip().split(None, 1)[0].upper()] += rows

    connection_class: Any = redis.connection.Connection
    send = connection_class.send_packed_command

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        trips.redis += 1
        send(self, command, check_health)

    copy = psycopg.Cursor.copy

    def counted_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        before(None, self, "COPY", None, None, False)  # a bulk insert: one statement, whatever its rows
        return copy(self, statement, *args, **kwargs)

    event.listen(Engine, "before_cursor_execute", before)
    monkeypatch.setattr(connection_class, "send_packed_command", counted_send)
    monkeypatch.setattr(psycopg.Cursor, "copy", counted_copy)
    try:
        yield trips
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        monkeypatch.setattr(connection_class, "send_packed_command", send)


def experiments(n: int, *, changed: bool = False) -> list[dict[str, Any]]:
    """n experiments, half active and half draft, each on its own public id; `changed` edits every
    one of them: new display name, a hot-swap, and active ones are paused."""
    out = []
    for i in range(n):
        status = "active" if i % 2 == 0 else "draft"
        control = dict(UPSTREAM_A, internal_id="up-a2") if changed else dict(UPSTREAM_A)
        variants: list[dict[str, Any]] = [
            {"label": "control", "weight": 1, "upstream": control, "api_key": {"from_env": "KEY_A"}},
            {"label": "treatment", "weight": 2, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
        ]
        m = manifest(f"exp-{i:03d}", status, public_id=f"preview/model-{i:03d}", variants=variants)
        if changed:
            m["display_name"] += " v2"
            m["status"] = "paused" if status == "active" else status
        out.append(m)
    return out


WorkspaceFactory = Callable[[str], Workspace]


@pytest.fixture
def workspaces(tmp_path: Path, pg_server: PostgresEndpoint, redis_url: str, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkspaceFactory]:
    """Makes workspaces that each have their own empty database (sharing one Redis, flushed)."""
    names: list[str] = []

    def make(label: str) -> Workspace:
        name = f"t_{uuid.uuid4().hex}"
        names.append(name)
        (tmp_path / label).mkdir()
        redis.Redis.from_url(redis_url).flushdb()
        return Workspace(tmp_path / label, pg_server.create_database(name), redis_url, capsys, monkeypatch)

    yield make
    for name in names:
        pg_server.drop_database(name)


def scenario(ws: Workspace, n: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int, dict[str, int]]]:
    """Counts for: reconcile creating n experiments, plan without changes, no-op reconcile, plan with
    every experiment changed, reconcile applying those changes."""
    counts = {}
    ws.write(*experiments(n))

    def measured(name: str, *args: str, expect: str) -> None:
        with counting(monkeypatch) as trips:
            result = ws.expctl(*args)
        assert result.code == 0, result.err
        assert expect in result.out, result.out[-2000:]
        counts[name] = trips.key()

    measured("reconcile (create)", "reconcile", "--auto-approve", expect="Applied")
    measured("plan (no changes)", "plan", expect="No changes")
    measured("reconcile (no-op)", "reconcile", "--auto-approve", expect="Nothing to apply")
    ws.write(*experiments(n, changed=True))
    measured("plan (changes)", "plan", expect="hot-swap")
    measured("reconcile (changes)", "reconcile", "--auto-approve", expect="Applied")
    rows = ws.rows("SELECT count(*) AS n FROM model_experiment WHERE status = 'paused'")
    assert rows == [{"n": (n + 1) // 2}]
    return counts


def test_round_trips_do_not_grow_with_the_number_of_experiments(
    workspaces: WorkspaceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = scenario(workspaces("small"), SMALL, monkeypatch)
    large = scenario(workspaces("large"), LARGE, monkeypatch)
    assert large == small
    # And they stay few: a plan is a snapshot and the three reads of the state.
    assert small["plan (no changes)"][0] <= 6
    assert small["reconcile (create)"][0] <= 25
    # The created rows travel by COPY, one per table: experiments, bindings, variants, versions.
    assert small["reconcile (create)"][2].get("COPY") == 4
    assert all(redis_trips <= 12 for _, redis_trips, _ in small.values())
