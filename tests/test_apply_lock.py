"""The apply lock on a real PostgreSQL: a waiting run says who holds it, and a timeout names the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, text

import expctl.adapters.store.db
from expctl.adapters.store.db import APPLY_LOCK_KEY, connect, take_apply_lock
from expctl.core.lockinfo import ApplyLock, RunTag
from tests.workspace import BYOK_B64, Workspace, manifest

HOLDER_SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
WAITER_SHA = "feedfacecafe0123456789abcdef0123456789ab"


@contextmanager
def expctl_holder(db_url: str) -> Iterator[Connection]:
    """A transaction holding the apply lock the way an expctl reconcile by alice does."""
    with connect(db_url) as conn, conn.begin():
        take_apply_lock(conn, ApplyLock(5.0, RunTag("reconcile", "alice", HOLDER_SHA)))
        yield conn


def _pid_and_since(conn: Connection) -> tuple[int, str]:
    row = conn.execute(text("SELECT pg_backend_pid() AS pid, to_char(xact_start AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS since FROM pg_stat_activity "
                            "WHERE pid = pg_backend_pid()")).one()
    return int(row.pid), str(row.since)


def test_a_waiting_run_names_the_holder_on_stderr_then_applies_when_it_is_free(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    env = {**os.environ, "BYOK_ENCRYPTION_KEY": BYOK_B64, "KEY_A": "secret-a", "KEY_B": "secret-b",
           "EXPCTL_ACTOR": "bob", "GITHUB_SHA": WAITER_SHA}
    with expctl_holder(ws.db_url) as holder:
        pid, since = _pid_and_since(holder)
        waiter = subprocess.Popen(
            [sys.executable, "-m", "expctl", "reconcile", "--auto-approve", "--lock-timeout", "60",
             "--database-url", ws.db_url, "--redis-url", ws.redis_url],
            cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert waiter.poll() is None, "the line must come while the run waits, not at its end"
        assert line.startswith("expctl: waiting for the apply lock, held by expctl reconcile by alice at revision "
                               f"1a2b3c4d5e6f (pid {pid}, since {since} ("), line
        assert line.rstrip().endswith("giving up in 60s"), line
        # The waiting run names itself too: command from the command line, actor and revision as audited.
        names = ws.rows("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'expctl|%' "
                        "AND pid <> :pid", pid=pid)
        assert names == [{"application_name": "expctl|reconcile|feedfacecafe|bob"}]
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "Applied" in out
    assert ws.experiment("exp")["status"] == "draft"


def test_timeout_exits_5_with_the_holders_command_actor_revision_and_since(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    with expctl_holder(ws.db_url) as holder:
        pid, since = _pid_and_since(holder)
        result = ws.reconcile("--lock-timeout", "0.5")
    assert result.code == 5, result
    holder_words = f"expctl reconcile by alice at revision 1a2b3c4d5e6f (pid {pid}, since {since} ("
    assert f"expctl: waiting for the apply lock, held by {holder_words}" in result.err
    assert f"another run holds the apply lock: {holder_words}" in result.err
    assert "gave up after 0.5s (--lock-timeout)" in result.err
    assert ws.rows("SELECT id FROM model_experiment") == []
    assert ws.rows("SELECT count(*) AS n FROM expctl_run") == [{"n": 0}]


def test_the_waiting_line_repeats_with_the_time_left(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expctl.adapters.store.db, "LOCK_NOTICE_EVERY_S", 0.4)
    ws.write(manifest("exp", "draft"))
    with expctl_holder(ws.db_url):
        result = ws.reconcile("--lock-timeout", "1.5")
    assert result.code == 5, result
    waiting = [line for line in result.err.splitlines() if "waiting for the apply lock" in line]
    assert len(waiting) in (3, 4), waiting  # at 0, 0.4, 0.8 and 1.2 s (3 on a very busy machine)
    left = [int(line.rsplit("giving up in ", 1)[1].rstrip("s")) for line in waiting]
    assert left == sorted(left, reverse=True) and left[0] == 2 and left[-1] == 1, left


def test_a_holder_that_is_not_expctl_is_reported_as_such(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    with connect(ws.db_url) as holder, holder.begin():
        holder.execute(text("SET LOCAL application_name = 'admin-console'"))
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPLY_LOCK_KEY})
        pid, _ = _pid_and_since(holder)
        result = ws.reconcile("--lock-timeout", "0.3")
    assert result.code == 5, result
    assert f"a session that is not expctl (application_name 'admin-console', pid {pid}, since " in result.err


def test_the_holders_name_lasts_only_for_its_transaction(db_url: str) -> None:
    with connect(db_url) as conn:
        with conn.begin():
            take_apply_lock(conn, ApplyLock(1.0, RunTag("import", None, None)))
            assert conn.execute(text("SHOW application_name")).scalar_one() == "expctl|import||"
            assert conn.execute(text("SHOW lock_timeout")).scalar_one() == "1s"
        assert conn.execute(text("SHOW application_name")).scalar_one() == "expctl"


def test_a_negative_lock_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from expctl.cli import run

    assert run(["reconcile", "--lock-timeout", "-1", "--auto-approve"]) == 1
    assert "--lock-timeout" in capsys.readouterr().err
