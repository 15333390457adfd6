"""Crash safety: `kill -9` of a reconcile at random moments of a large apply.

The apply creates 300 experiments (600 variants and versions, half of them activated) and edits 20
existing ones (activations, pauses, hot-swaps) in one run. A calibration run measures how long the
whole command takes and how long its PostgreSQL work lasts; each kill then lands at a random delay:
even-numbered kills anywhere in the command's lifetime (start-up, reading manifests, planning,
applying, refreshing Redis), odd-numbered ones inside the database work (after its first session
appears). After each kill:

- PostgreSQL ends the dead client's sessions (bounded poll) and no advisory lock is left;
- the database is exactly as before (every row, ids and timestamps included) or exactly as after
  (the calibration run's logical state), never in between; the audit row goes with the changes;
- the next reconcile converges to the after state, Redis included, and a plan then shows nothing.

Each kill runs on a fresh copy of the base database (CREATE DATABASE … TEMPLATE).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from expctl.adapters.store.db import APPLY_LOCK_KEY
from tests.reliability.helpers import (
    advisory_locks,
    child_env,
    exact_dump,
    local_tcp_ports,
    lock_holder_port,
    logical_state,
    membership,
    plain_url,
    reconcile_args,
    routed_ids,
    spawn,
    sql,
    wait_backends_gone,
    wait_for,
)
from tests.servers import PostgresEndpoint
from tests.workspace import UPSTREAM_A, Workspace, manifest

pytestmark = pytest.mark.reliability

NEW_EXPERIMENTS = 300
SECRETS = {"KEY_A": "secret-a", "KEY_B": "secret-b"}
BASE_RUNS = 1  # the template holds the audit row of the run that built the base state


def base_manifests() -> list[dict[str, Any]]:
    return ([manifest(f"b{i}", "active", public_id=f"preview/b{i}") for i in range(10)]
            + [manifest(f"d{i}", "draft", public_id=f"preview/d{i}") for i in range(10)])


def big_manifests() -> list[dict[str, Any]]:
    edited = []
    for base in base_manifests():
        name, public, i = base["name"], base["public_model_id"], int(base["name"][1:])
        m = base
        if name.startswith("d") and i < 5:
            m = manifest(name, "active", public_id=public)  # activations
        elif name.startswith("b") and i < 3:
            m = manifest(name, "paused", public_id=public)  # pauses
        elif name.startswith("b") and i < 6:
            m = manifest(name, "active", public_id=public)  # hot-swaps
            m["variants"][0]["upstream"] = {**UPSTREAM_A, "internal_id": f"swapped-{i}"}
        edited.append(m)
    new = [manifest(f"n{i:03d}", "active" if i % 2 else "draft", public_id=f"preview/n{i:03d}",
                    description=f"experiment number {i}") for i in range(NEW_EXPERIMENTS)]
    return edited + new


@dataclass
class Clones:
    """Fresh copies of a template database on the session's PostgreSQL server."""

    server: PostgresEndpoint
    template: str

    @contextlib.contextmanager
    def clone(self) -> Iterator[str]:
        name = f"{self.template}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        try:
            yield self.server.database_url(name)
        finally:
            self.server.drop_database(name)


def _db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _tx_started(db_url: str) -> bool:
    return any(b["xact_start"] is not None for b in sql(db_url, "SELECT xact_start FROM pg_stat_activity WHERE "
                                                                 "datname = current_database() AND application_name "
                                                                 "LIKE 'expctl%'"))


@dataclass
class Calibration:
    total_s: float  # spawn to exit
    db_s: float  # first to last moment an expctl transaction was seen open (mostly the apply's)
    after: dict[str, Any]


def calibrate(clones: Clones, ws: Workspace, env: dict[str, str], logs: Path) -> Calibration:
    with clones.clone() as url:
        proc = spawn(ws.root, reconcile_args(url, ws.redis_url), env, logs)
        seen: list[float] = []
        while proc.popen.poll() is None:
            if _tx_started(url):
                seen.append(time.monotonic())
            time.sleep(0.003)
        done = proc.wait()
        assert done.code == 0, done.err
        assert seen, "no transaction of the run was ever seen"
        return Calibration(time.monotonic() - proc.started, seen[-1] - seen[0], logical_state(url))


def kill_once(clones: Clones, ws: Workspace, env: dict[str, str], logs: Path, cal: Calibration,
              base: dict[str, list[dict[str, Any]]], rng: random.Random, inside_db: bool) -> dict[str, Any]:
    with redis.Redis.from_url(ws.redis_url) as client:
        client.flushdb()
    with clones.clone() as url:
        proc = spawn(ws.root, reconcile_args(url, ws.redis_url), env, logs)
        if inside_db:
            deadline = time.monotonic() + cal.total_s * 3
            while not _tx_started(url) and proc.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.003)
            delay = rng.uniform(0, cal.db_s)
        else:
            delay = rng.uniform(0, cal.total_s)
        time.sleep(delay)
        alive = proc.popen.poll() is None
        in_tx = alive and _tx_started(url)
        proc.kill()
        waited = wait_backends_gone(url)
        assert advisory_locks(url) == [], "an advisory lock outlived the killed run"

        dump = exact_dump(url)
        # The audit row is written in the same transaction as the changes: it goes with them.
        audited = sql(url, "SELECT count(*) AS n FROM expctl_run WHERE outcome = 'applied'")[0]["n"] - BASE_RUNS
        if dump == base:
            outcome = "before"
            assert audited == 0
        else:
            assert logical_state(url) == cal.after, "the database is neither as before nor as after the run"
            outcome = "after"
            assert audited == 1

        ws.db_url, saved = url, ws.db_url
        try:
            healed = ws.reconcile()
        finally:
            ws.db_url = saved
        assert healed.code == 0, (healed.out[-2000:], healed.err)
        if outcome == "after":
            assert "Nothing to apply." in healed.out  # converged already: the re-run only refreshes Redis
        assert logical_state(url) == cal.after
        assert membership(ws.redis_url) == routed_ids(url)
        return {"outcome": outcome, "alive": alive, "in_tx": in_tx, "waited": waited}


def _applied_base_then_big(ws: Workspace, pg_server: PostgresEndpoint) -> tuple[dict[str, Any], Clones, dict[str, str]]:
    """The base manifests applied, the big ones written: (the tables now, clones of that database,
    the environment of an `expctl` child)."""
    ws.write(*base_manifests())
    assert ws.reconcile().code == 0
    base = exact_dump(ws.db_url)
    ws.write(*big_manifests())
    return base, Clones(pg_server, _db_name(ws.db_url)), child_env(SECRETS)


def _kills(ws: Workspace, pg_server: PostgresEndpoint, tmp_path: Path, figures: dict[str, object], kills: int) -> None:
    base, clones, env = _applied_base_then_big(ws, pg_server)
    cal = calibrate(clones, ws, env, tmp_path / "calibration")
    seed = int(os.environ.get("EXPCTL_SEED") or random.randrange(2**32))
    figures.update(seed=seed, run_s=round(cal.total_s, 2), db_s=round(cal.db_s, 2))
    rng = random.Random(seed)
    results = [kill_once(clones, ws, env, tmp_path / f"kill{i}", cal, base, rng, inside_db=bool(i % 2))
               for i in range(kills)]
    outcomes = Counter(r["outcome"] for r in results)
    figures.update(
        kills=sum(r["alive"] for r in results), runs_finished_before_kill=sum(not r["alive"] for r in results),
        killed_in_transaction=sum(r["in_tx"] for r in results), before=outcomes["before"], after=outcomes["after"],
        between=0, max_session_linger_s=round(max(r["waited"] for r in results), 3),
    )
    assert sum(r["alive"] for r in results) >= kills // 2, "most kills should hit a live process"


def test_killing_the_lock_holder_frees_the_waiting_run(ws: Workspace, pg_server: PostgresEndpoint, tmp_path: Path,
                                                       figures: dict[str, object]) -> None:
    """Two runs wait on the lock the test holds; the test lets go, and kills -9 whichever run got it.
    The other must take the lock as soon as PostgreSQL has ended the dead session, and apply."""
    base, clones, env = _applied_base_then_big(ws, pg_server)
    with clones.clone() as url:
        holder = psycopg.connect(plain_url(url), application_name="reliability-holder")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK_KEY,))
        runs = [spawn(ws.root, reconcile_args(url, ws.redis_url, "--lock-timeout", "60"), env, tmp_path / "logs")
                for _ in range(2)]
        wait_for(lambda: sum(not lock["granted"] for lock in advisory_locks(url)) == 2, 60, "both runs to wait")
        holder.rollback()  # lets go of the lock: one run gets it, the other keeps waiting
        holder.close()
        wait_for(lambda: lock_holder_port(url) is not None, 10, "a run to take the lock", 0.001)
        port = lock_holder_port(url)
        victim = next(r for r in runs if port in local_tcp_ports(r.pid))
        survivor = next(r for r in runs if r is not victim)
        victim.kill()
        done = survivor.wait(60)
        assert done.code == 0, done.err
        wait_backends_gone(url)
        assert advisory_locks(url) == []
        assert exact_dump(url) != base and logical_state(url) == reference_after(clones, ws)
    # Almost always the victim dies before its commit and the survivor applies everything.
    figures["survivor_applied"] = "Applied" in done.out


def reference_after(clones: Clones, ws: Workspace) -> dict[str, Any]:
    """The logical state an uninterrupted in-process reconcile of the manifests produces."""
    with clones.clone() as url:
        ws.db_url, saved = url, ws.db_url
        try:
            assert ws.reconcile().code == 0
        finally:
            ws.db_url = saved
        return logical_state(url)


def test_kill_9_during_a_large_apply(ws: Workspace, pg_server: PostgresEndpoint, tmp_path: Path,
                                     figures: dict[str, object]) -> None:
    _kills(ws, pg_server, tmp_path, figures, kills=16)


@pytest.mark.slow
def test_kill_9_many_times(ws: Workspace, pg_server: PostgresEndpoint, tmp_path: Path,
                           figures: dict[str, object]) -> None:
    _kills(ws, pg_server, tmp_path, figures, kills=60)
