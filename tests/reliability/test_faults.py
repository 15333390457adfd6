"""Faults: PostgreSQL restarted mid-run, refused, timing out or locked; Redis refused, silent, erroring.

Each fault must end the run with a clear message (asserted), the exit code of the contract
(1 connection failure or database error, 3 PostgreSQL committed but the Redis refresh failed,
5 a lock wait timed out), nothing half-applied, and a re-run that heals.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

import expctl.adapters.cache
import expctl.app.service
import expctl.cli.cmd_plan
from expctl.adapters.store.db import APPLY_LOCK_KEY
from expctl.app.settings import Settings
from expctl.core.plan import Plan
from tests.reliability.helpers import (
    FakeRedis,
    advisory_locks,
    assert_matches_manifests,
    child_env,
    exact_dump,
    membership,
    plain_url,
    reconcile_args,
    refused_port,
    routed_ids,
    spawn,
    sql,
    wait_for,
)
from tests.servers import PostgresServer, RedisEndpoint
from tests.workspace import MEMBERSHIP_KEY, Workspace, manifest

pytestmark = pytest.mark.reliability

SECRETS = {"KEY_A": "secret-a", "KEY_B": "secret-b"}


def manifests() -> list[dict[str, Any]]:
    return [manifest("exp", "active"), manifest("other", "draft", public_id="preview/other"),
            manifest("third", "active", public_id="preview/third")]


# --- PostgreSQL restarted -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restartable() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own, so it can be stopped and started again (on the same data and
    port); its data is removed at the end."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def rws(restartable: PostgresServer, tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    if not restartable.running:
        restartable.start()
    name = f"r_{tmp_path.name.replace('-', '_').lower()}"[:60]
    url = restartable.create_database(name)
    yield Workspace(tmp_path, url, redis_url, capsys, monkeypatch)
    if not restartable.running:
        restartable.start()
    restartable.drop_database(name)


def restart(server: PostgresServer) -> float:
    """Stops (fast shutdown: every session is terminated) and starts it again on the same data and port."""
    start = time.monotonic()
    port = server.port
    server.stop()
    server.start()
    assert server.port == port
    return time.monotonic() - start


def test_postgres_restarts_while_a_run_waits_for_the_lock(rws: Workspace, restartable: PostgresServer,
                                                          figures: dict[str, object]) -> None:
    rws.write(*manifests())
    holder = psycopg.connect(plain_url(rws.db_url), application_name="reliability-holder")
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK_KEY,))
    proc = spawn(rws.root, reconcile_args(rws.db_url, rws.redis_url, "--lock-timeout", "60"), child_env(SECRETS),
                 rws.root / "logs")
    try:
        wait_for(lambda: any(not lock["granted"] for lock in advisory_locks(rws.db_url)), 30,
                 "the run to wait for the apply lock")
        figures["restart_s"] = round(restart(restartable), 2)
        done = proc.wait(60)
    finally:
        with contextlib.suppress(psycopg.Error):
            holder.close()
    assert done.code == 1, (done.out, done.err)
    assert "lost the connection to PostgreSQL at postgresql://postgres@127.0.0.1" in done.err, done.err
    assert "nothing was applied" in done.err and "Traceback" not in done.err
    assert sql(rws.db_url, "SELECT count(*) AS n FROM model_experiment") == [{"n": 0}]
    assert advisory_locks(rws.db_url) == []
    healed = rws.reconcile()
    assert healed.code == 0, healed.err
    assert_matches_manifests(rws.db_url, manifests(), SECRETS)
    assert membership(rws.redis_url) == ["preview/third", "preview/x"]


def test_postgres_restarts_between_plan_and_apply(rws: Workspace, restartable: PostgresServer) -> None:
    rws.write(manifest("exp", "draft"))
    assert rws.reconcile().code == 0
    before = exact_dump(rws.db_url)
    rws.write(*manifests())
    real = expctl.cli.cmd_plan._PlanPrinter.confirm

    def confirm_after_restart(printer: object, plan: Plan) -> bool:
        restart(restartable)  # the run holds the lock and has planned; its session is now gone
        return bool(real(printer, plan))  # type: ignore[arg-type]

    rws.monkeypatch.setattr(expctl.cli.cmd_plan._PlanPrinter, "confirm", confirm_after_restart)
    result = rws.reconcile()
    assert result.code == 1, (result.out, result.err)
    assert "lost the connection to PostgreSQL" in result.err and "nothing was applied" in result.err, result.err
    assert exact_dump(rws.db_url) == before
    rws.monkeypatch.setattr(expctl.cli.cmd_plan._PlanPrinter, "confirm", real)
    assert rws.reconcile().code == 0
    assert_matches_manifests(rws.db_url, manifests(), SECRETS)


def test_saved_plan_survives_a_postgres_restart(rws: Workspace, restartable: PostgresServer) -> None:
    rws.write(*manifests())
    plan_file = rws.root / "plan.json"
    assert rws.expctl("plan", "--out", str(plan_file)).code == 0
    restart(restartable)
    applied = rws.expctl("apply", str(plan_file), "--auto-approve")
    assert applied.code == 0, applied.err
    assert_matches_manifests(rws.db_url, manifests(), SECRETS)


def test_postgres_lost_right_after_the_commit_exits_3(rws: Workspace, restartable: PostgresServer) -> None:
    rws.write(*manifests())
    real = expctl.app.service.refresh_cache

    def stop_then_refresh(settings: Settings, extra_ids: Any = (), committed: bool = True) -> None:
        restartable.stop()
        real(settings, extra_ids, committed)

    rws.monkeypatch.setattr(expctl.app.service, "refresh_cache", stop_then_refresh)
    result = rws.reconcile()
    assert result.code == 3, (result.out, result.err)
    assert "PostgreSQL is committed, but the Redis refresh could not read it back" in result.err, result.err
    assert "cannot connect to PostgreSQL" in result.err and "re-run" in result.err
    restartable.start()
    assert_matches_manifests(rws.db_url, manifests(), SECRETS)  # the commit stands
    assert membership(rws.redis_url) is None  # and Redis was never written
    rws.monkeypatch.setattr(expctl.app.service, "refresh_cache", real)
    healed = rws.reconcile()
    assert healed.code == 0 and "Nothing to apply" in healed.out
    assert membership(rws.redis_url) == ["preview/third", "preview/x"]
    assert rws.expctl("cache", "check").code == 0


# --- PostgreSQL refused, timing out, locked -------------------------------------------------------


COMMANDS: list[tuple[str, ...]] = [
    ("plan",), ("reconcile", "--auto-approve"), ("apply", "--auto-approve"), ("cache", "check"),
    ("cache", "refresh"), ("history",), ("db", "init"), ("import",), ("simulate", "preview/x", "--subject", "user:1"),
]


def test_postgres_connection_refused(ws: Workspace, figures: dict[str, object]) -> None:
    ws.write(*manifests())
    with refused_port() as port:
        url = f"postgresql://expctl:pw-CANARY-1234@127.0.0.1:{port}/gateway"
        for command in COMMANDS:
            start = time.monotonic()
            ws.db_url, saved = url, ws.db_url
            try:
                result = ws.expctl(*command)
            finally:
                ws.db_url = saved
            assert result.code == 1, (command, result.out, result.err)
            assert f"cannot connect to PostgreSQL at postgresql://expctl:***@127.0.0.1:{port}/gateway" in result.err
            assert "CANARY" not in result.out + result.err
            assert time.monotonic() - start < 10
    assert sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment") == [{"n": 0}]
    figures["commands"] = len(COMMANDS)


def _hold_row_lock(ws: Workspace, name: str) -> psycopg.Connection[Any]:
    """An open transaction that has locked the experiment's row, as an admin UI edit in progress would."""
    holder = psycopg.connect(plain_url(ws.db_url), application_name="reliability-holder")
    holder.execute("SELECT id FROM model_experiment WHERE id = (SELECT experiment_id FROM expctl_binding "
                   "WHERE name = %s) FOR UPDATE", (name,))
    return holder


def _pause_while_locked(ws: Workspace) -> tuple[list[dict[str, Any]], dict[str, Any], psycopg.Connection[Any]]:
    """Applied manifests, then an edit pausing `exp` whose row another session holds locked:
    (the edited manifests, the tables before the run, the session holding the lock)."""
    ws.write(*manifests())
    assert ws.reconcile().code == 0
    edited = [manifest("exp", "paused"), *manifests()[1:]]
    ws.write(*edited)
    return edited, exact_dump(ws.db_url), _hold_row_lock(ws, "exp")


def test_statement_timeout_while_a_row_is_locked(ws: Workspace) -> None:
    edited, before, holder = _pause_while_locked(ws)
    try:
        ws.monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=300")
        result = ws.reconcile()
        ws.monkeypatch.delenv("PGOPTIONS")
    finally:
        holder.close()
    assert result.code == 1, (result.out, result.err)
    assert "PostgreSQL error (SQLSTATE 57014): canceling statement due to statement timeout" in result.err
    assert "nothing was applied" in result.err
    assert exact_dump(ws.db_url) == before
    assert ws.reconcile().code == 0
    assert_matches_manifests(ws.db_url, edited, SECRETS)


def test_row_lock_wait_past_the_lock_timeout_exits_5(ws: Workspace) -> None:
    edited, before, holder = _pause_while_locked(ws)
    try:
        result = ws.reconcile("--lock-timeout", "0.5")
    finally:
        holder.close()
    assert result.code == 5, (result.out, result.err)
    assert "gave up waiting for a lock held by another session" in result.err
    assert "nothing was applied" in result.err
    assert exact_dump(ws.db_url) == before
    assert ws.reconcile().code == 0
    assert_matches_manifests(ws.db_url, edited, SECRETS)


def test_short_statement_timeouts_never_half_apply(ws: Workspace, figures: dict[str, object]) -> None:
    """Growing statement_timeouts make the run fail at later and later statements: while connecting,
    reading, writing (exit 1, nothing applied) or after the commit (exit 3, all applied). Never between."""
    many = [manifest(f"e{i:03d}", "active", public_id=f"preview/e{i:03d}") for i in range(150)]
    ws.write(*many)
    outcomes: dict[int, str] = {}
    for timeout_ms in (1, 2, 4, 8, 15, 25, 40, 60, 100, 200, 400):
        ws.monkeypatch.setenv("PGOPTIONS", f"-c statement_timeout={timeout_ms}")
        result = ws.reconcile()
        ws.monkeypatch.delenv("PGOPTIONS")
        experiments = sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment")[0]["n"]
        if result.code == 0:
            outcomes[timeout_ms] = "applied"
            assert experiments == len(many)
            break
        assert "canceling statement due to statement timeout" in result.err, result.err
        assert "Traceback" not in result.err and "internal error" not in result.err
        if result.code == 1:
            outcomes[timeout_ms] = "connect" if "cannot connect" in result.err else "rolled back"
            assert experiments == 0, result.err
            assert "cannot connect" in result.err or "nothing was applied" in result.err, result.err
        else:
            assert result.code == 3, result.err
            outcomes[timeout_ms] = "committed, refresh failed"
            assert experiments == len(many)
            break
    figures["outcomes_by_timeout_ms"] = outcomes
    assert ws.reconcile().code == 0
    assert_matches_manifests(ws.db_url, many, SECRETS)
    assert membership(ws.redis_url) == routed_ids(ws.db_url)


# --- Redis refused, silent, erroring --------------------------------------------------------------


@contextlib.contextmanager
def faulty_redis(kind: str, noauth: RedisEndpoint) -> Iterator[tuple[str, str]]:
    """(url, the error type expctl must name) for each kind of broken Redis."""
    if kind == "refused":
        with refused_port() as port:
            yield f"redis://127.0.0.1:{port}/0", "ConnectionError"
    elif kind == "silent":
        with FakeRedis("silent") as fake:
            yield fake.url, "TimeoutError"
    elif kind == "error":
        with FakeRedis("error") as fake:
            yield fake.url, "ResponseError"
    else:
        yield noauth.url.replace("redis://", "redis://:wrong-CANARY-pw@"), "AuthenticationError"


REDIS_FAULTS = ["refused", "silent", "error", "noauth"]


@pytest.mark.parametrize("kind", REDIS_FAULTS)
def test_broken_redis(ws: Workspace, kind: str, password_redis: RedisEndpoint, figures: dict[str, object]) -> None:
    ws.monkeypatch.setattr(expctl.adapters.cache, "SOCKET_TIMEOUT_S", 0.5)  # silent server: reads time out
    ws.write(*manifests())
    with faulty_redis(kind, password_redis) as (bad, error):
        shown = bad.replace(":wrong-CANARY-pw@", ":***@")
        start = time.monotonic()
        down = ws.expctl("reconcile", "--auto-approve", redis_url=bad)
        elapsed = time.monotonic() - start
        assert down.code == 3, (down.out, down.err)
        assert f"PostgreSQL is committed, but refreshing Redis failed for {shown} ({error})" in down.err, down.err
        assert elapsed < 10, f"Redis timeouts are not bounded: {elapsed:.1f}s"
        assert_matches_manifests(ws.db_url, manifests(), SECRETS)  # PostgreSQL applied in full

        plan = ws.expctl("plan", redis_url=bad)
        assert plan.code == 1 and f"cannot read Redis at {shown}: {error}" in plan.err, plan.err
        check = ws.expctl("cache", "check", redis_url=bad)
        assert check.code == 2 and f"drift: {shown}: unreachable ({error})" in check.out, check.out
        refresh = ws.expctl("cache", "refresh", redis_url=bad)
        assert refresh.code == 3 and f"refreshing Redis failed for {shown} ({error})" in refresh.err

        # Two regions, one broken: the healthy one is refreshed, the run still says exit 3.
        both = ws.expctl("reconcile", "--auto-approve", "--redis-url", bad)
        assert both.code == 3 and shown in both.err and ws.redis_url not in both.err
        assert membership(ws.redis_url) == ["preview/third", "preview/x"]
        for output in (down, plan, check, refresh, both):
            assert "CANARY" not in output.out + output.err and "Traceback" not in output.err
    with redis.Redis.from_url(ws.redis_url) as client:
        client.flushdb()
    healed = ws.reconcile()
    assert healed.code == 0 and "Nothing to apply" in healed.out
    assert membership(ws.redis_url) == ["preview/third", "preview/x"]
    assert ws.expctl("cache", "check").code == 0
    figures["reconcile_s"] = round(elapsed, 2)


def test_membership_key_of_the_wrong_type_is_drift_and_heals(ws: Workspace) -> None:
    ws.write(*manifests())
    assert ws.reconcile().code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.delete(MEMBERSHIP_KEY)
        client.hset(MEMBERSHIP_KEY, "preview/x", "1")  # e.g. written by a buggy tool
    check = ws.expctl("cache", "check")
    assert check.code == 2 and "membership value is corrupt" in check.out, (check.out, check.err)
    plan = ws.expctl("plan")
    assert plan.code == 0 and "drift" in plan.out
    healed = ws.reconcile()
    assert healed.code == 0, healed.err
    assert membership(ws.redis_url) == ["preview/third", "preview/x"]
    assert ws.expctl("cache", "check").code == 0


def test_redis_timeouts_are_bounded() -> None:
    client = expctl.adapters.cache.Cache(["redis://127.0.0.1:1/0"])._client("redis://127.0.0.1:1/0")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == expctl.adapters.cache.SOCKET_TIMEOUT_S <= 10
    with FakeRedis("silent") as fake:
        cache = expctl.adapters.cache.Cache([fake.url, fake.url])
        start = time.monotonic()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(expctl.adapters.cache, "SOCKET_TIMEOUT_S", 0.3)
            failures = cache.refresh(["preview/x"], ["preview/x"])
        elapsed = time.monotonic() - start
    assert len(failures) == 2 and all("TimeoutError" in f for f in failures)
    assert elapsed < 2 * 0.3 * 2 + 0.5, f"a silent Redis costs more than one timeout per call: {elapsed:.2f}s"
    assert fake.connections == 2  # no retry loops


@pytest.mark.slow
def test_silent_redis_with_the_real_timeout(ws: Workspace, tmp_path: Path) -> None:
    """The subprocess, real SOCKET_TIMEOUT_S: a silent Redis costs a bounded few timeouts, then exit 3."""
    ws.write(*manifests())
    with FakeRedis("silent") as fake:
        done = spawn(ws.root, reconcile_args(ws.db_url, fake.url), child_env(SECRETS), tmp_path).wait(120)
    assert done.code == 3 and "(TimeoutError)" in done.err, done.err
    # One timeout reading the membership before the apply, one in the refresh after it: no retry loops.
    assert done.seconds < 2 * expctl.adapters.cache.SOCKET_TIMEOUT_S + 10, done.seconds
