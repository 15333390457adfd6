"""Concurrency: eight reconcilers at once on the same manifests, round after round, racing the admin UI.

Each round edits the manifests (activate, pause, resume, hot-swap, key rotation, reweight, replace,
archive), starts 8 `expctl reconcile` subprocesses at the same moment and, while they run, writes
to the tables the way the gateway's admin UI does: status flips, an inserted version row (a
hot-swap), and unmanaged experiments created on public ids the manifests use.

Accepted exit codes of a racing run (docs/reliability.md):
- 0;
- 1 only for a conflict the race really creates, and the message must say which and that nothing
  was applied: a refusal (an unmanaged experiment blocks an activation), a row that changed
  underneath the run, or the routing unique index refusing the write;
- 5 if a run waited longer than its lock timeout (the runs are serialised by the advisory lock);
- never 4 (no saved plans here), never an internal error.
After each round the admin resolves a blocker it created (completes it), one clean reconcile runs,
and the state must match the manifests exactly, with no duplicate row or version and the right
Redis membership.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from expctl.adapters.crypto import encrypt_api_key
from tests.reliability.helpers import (
    ADMIN,
    BYOK,
    assert_matches_manifests,
    assert_no_duplicates,
    assert_no_redundant_versions,
    child_env,
    expctl_backends,
    membership,
    reconcile_args,
    routed_ids,
    spawn,
    sql,
    wait_for,
)
from tests.workspace import UPSTREAM_A, UPSTREAM_B, Workspace, manifest

pytestmark = pytest.mark.reliability

RECONCILERS = 8
CONTENTION_S = 1.0
ADMIN_UPSTREAM = {"internal_id": "admin-hot-swap", "base_url": "https://admin.example.com/v1"}
RACE_EXIT_1 = ("change(s) refused: nothing was applied", "changed underneath this run",
               "the database refused the change")


def _m(name: str, status: str, public: str, **extra: Any) -> dict[str, Any]:
    return manifest(name, status, public_id=f"preview/{public}", **extra)


def _variants(control: dict[str, Any] | None = None, control_weight: int = 1) -> list[dict[str, Any]]:
    return [
        {"label": "control", "weight": control_weight, "upstream": dict(control or UPSTREAM_A),
         "api_key": {"from_env": "KEY_A"}},
        {"label": "treatment", "weight": 1, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
    ]


# --- what the admin UI does -----------------------------------------------------------------------


def admin_pause(db_url: str, name: str) -> str:
    rows = sql(db_url, "UPDATE model_experiment SET status = 'paused', updated_at = now() WHERE status = 'active' "
                       "AND id = (SELECT experiment_id FROM expctl_binding WHERE name = %s) RETURNING id", (name,))
    return f"paused {name}" if rows else f"{name} not active yet"


def admin_hot_swap(db_url: str, name: str, label: str) -> str:
    variant = sql(db_url, "SELECT v.id FROM model_experiment_variant v JOIN expctl_binding b "
                          "ON b.experiment_id = v.experiment_id WHERE b.name = %s AND v.label = %s", (name, label))
    if not variant:
        return f"{name}/{label} not created yet"
    sql(db_url, "INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, created_by) "
                "VALUES (%s, %s, %s, %s)",
        (variant[0]["id"], psycopg.types.json.Jsonb(ADMIN_UPSTREAM),
         psycopg.types.json.Jsonb(encrypt_api_key(BYOK, "admin-typed-key")), ADMIN))
    return f"hot-swapped {name}/{label}"


def admin_create(db_url: str, public: str, status: str) -> str:
    try:
        sql(db_url, "INSERT INTO model_experiment (public_model_id, name, status, started_at) "
                    "VALUES (%s, %s, %s, CASE WHEN %s = 'active' THEN now() END)",
            (f"preview/{public}", f"Admin experiment on {public}", status, status))
    except psycopg.errors.UniqueViolation:
        return f"admin lost the race for preview/{public} (already routed)"
    return f"created unmanaged {status} on preview/{public}"


def admin_complete_blockers(db_url: str) -> int:
    """What an operator does about a refusal naming an unmanaged blocker: complete it."""
    return len(sql(db_url, "UPDATE model_experiment SET status = 'completed', ended_at = now(), updated_at = now() "
                           "WHERE status IN ('active', 'paused') AND NOT EXISTS (SELECT 1 FROM expctl_binding b "
                           "WHERE b.experiment_id = model_experiment.id) RETURNING id"))


Race = Callable[[str], str]

ROUNDS: list[tuple[list[dict[str, Any]], dict[str, str], list[Race]]] = [
    (
        [_m("e0", "active", "c0"), _m("e1", "active", "c1"), _m("e2", "draft", "c2"),
         _m("e3", "active", "c3"), _m("e4", "draft", "c4"), _m("e5", "draft", "c5")],
        {"KEY_A": "secret-a", "KEY_B": "secret-b"},
        [lambda db: admin_pause(db, "e0"), lambda db: admin_create(db, "c5", "draft")],
    ),
    (
        [_m("e0", "active", "c0"), _m("e1", "active", "c1", variants=_variants({**UPSTREAM_A, "internal_id": "a2"})),
         _m("e2", "active", "c2"), _m("e3", "paused", "c3"),
         _m("e4", "draft", "c4", variants=_variants(control_weight=3)), _m("e5", "draft", "c5")],
        {"KEY_A": "secret-a", "KEY_B": "secret-b-rotated-2"},
        [lambda db: admin_create(db, "c2", "active"), lambda db: admin_hot_swap(db, "e1", "treatment"),
         lambda db: admin_pause(db, "e1")],
    ),
    (
        [_m("e0", "completed", "c0"), _m("e6", "active", "c0"),
         _m("e1", "active", "c1", variants=_variants({**UPSTREAM_A, "internal_id": "a2"})),
         _m("e2", "active", "c2", description="edited in round 3"), _m("e3", "active", "c3"),
         _m("e4", "active", "c4", variants=_variants(control_weight=3)), _m("e5", "draft", "c5", archived=True)],
        {"KEY_A": "secret-a-rotated-3", "KEY_B": "secret-b-rotated-2"},
        [lambda db: admin_pause(db, "e4"), lambda db: admin_create(db, "c1", "draft"),
         lambda db: admin_hot_swap(db, "e2", "control"), lambda db: admin_create(db, "c6", "active")],
    ),
]


def check_racing_run(code: int, out: str, err: str) -> str:
    """Checks one racing run's outcome against the accepted ones; returns its kind."""
    assert "internal error" not in err and "Traceback" not in err, err
    if code == 1:
        reasons = [reason for reason in RACE_EXIT_1 if reason in err]
        assert reasons, err
        assert "nothing was applied" in err, err
        if reasons[0] == RACE_EXIT_1[0]:  # a refused plan (not the database refusing a racing write)
            assert "is already routed by unmanaged experiment" in out, out  # the refusal names the blocker
        return f"1: {reasons[0]}"
    if code == 5:
        assert "another expctl run holds the apply lock" in err, err
        return "5: lock timeout"
    assert code == 0, (code, out, err)
    return "0: applied" if "Applied" in out else "0: nothing to apply"


def run_round(ws: Workspace, manifests: list[dict[str, Any]], secrets: dict[str, str], races: list[Race],
              rng: random.Random, logs: Path, early: bool = False) -> tuple[Counter[str], list[str]]:
    ws.write(*manifests)
    env = child_env(secrets)
    args = reconcile_args(ws.db_url, ws.redis_url, "--lock-timeout", "90")
    procs = [spawn(ws.root, args, env, logs) for _ in range(RECONCILERS)]
    notes: list[str] = []

    # The 8 runs spend their first seconds starting the interpreter, then reach PostgreSQL within a
    # second of each other. Each admin write lands at its own random moment of that second (or, when
    # `early`, of the first second of the round: before any run has read anything).
    schedule = sorted((rng.uniform(0, CONTENTION_S), i) for i in range(len(races)))

    errors: list[BaseException] = []

    def admin() -> None:
        try:
            if not early:
                wait_for(lambda: bool(expctl_backends(ws.db_url)), 60, "the first run to reach PostgreSQL", 0.005)
            start = time.monotonic()
            for moment, i in schedule:
                time.sleep(max(0.0, start + moment - time.monotonic()))
                notes.append(races[i](ws.db_url))
        except BaseException as err:  # reported by the test thread below
            errors.append(err)

    thread = threading.Thread(target=admin)
    thread.start()
    outcomes = [p.wait(180) for p in procs]
    thread.join(30)
    assert not thread.is_alive() and not errors, errors
    return Counter(check_racing_run(o.code, o.out, o.err) for o in outcomes), notes


def converge_and_check(ws: Workspace, manifests: list[dict[str, Any]], secrets: dict[str, str]) -> None:
    admin_complete_blockers(ws.db_url)
    for name, value in secrets.items():
        ws.monkeypatch.setenv(name, value)
    # The admin UI paused or edited managed rows during the race: that is drift, which reconcile holds
    # by default (docs/design.md#drift); the operator restores the manifests' values explicitly.
    final = ws.reconcile("--drift=revert")
    assert final.code == 0, (final.out, final.err)
    assert_matches_manifests(ws.db_url, manifests, secrets)
    assert_no_duplicates(ws.db_url)
    assert_no_redundant_versions(ws.db_url)
    unmanaged = int(sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment e WHERE NOT EXISTS "
                                   "(SELECT 1 FROM expctl_binding b WHERE b.experiment_id = e.id)")[0]["n"])
    assert sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment")[0]["n"] == len(manifests) + unmanaged
    want_routed = sorted(m["public_model_id"] for m in manifests if m["status"] in ("active", "paused"))
    assert routed_ids(ws.db_url) == want_routed
    assert membership(ws.redis_url) == want_routed
    assert ws.expctl("cache", "check").code == 0
    plan = ws.expctl("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out


def _run_rounds(ws: Workspace, tmp_path: Path, figures: dict[str, object], repeats: int) -> None:
    seed = int(os.environ.get("EXPCTL_SEED") or random.randrange(2**32))  # EXPCTL_SEED=… replays a schedule
    figures["seed"] = seed
    rng = random.Random(seed)
    totals: Counter[str] = Counter()
    admin_notes: Counter[str] = Counter()
    for repeat in range(repeats):
        if repeat:  # start over on a fresh set of rows: the admin's leftovers are completed, names reused
            sql(ws.db_url, "TRUNCATE model_experiment, expctl_binding CASCADE")
        for number, (manifests, secrets, admin_races) in enumerate(ROUNDS):
            codes, notes = run_round(ws, manifests, secrets, admin_races, rng, tmp_path / f"r{repeat}-{number}",
                                     early=repeat % 2 == 1)
            totals += codes
            admin_notes.update(notes)
            converge_and_check(ws, manifests, secrets)
    figures.update(rounds=repeats * len(ROUNDS), reconcile_runs=sum(totals.values()),
                   outcomes=dict(sorted(totals.items())), admin_writes=sum(admin_notes.values()),
                   admin=dict(sorted(admin_notes.items())), final_checks_passed=repeats * len(ROUNDS))


def test_eight_reconcilers_race_each_other_and_the_admin_ui(ws: Workspace, tmp_path: Path,
                                                             figures: dict[str, object]) -> None:
    _run_rounds(ws, tmp_path, figures, repeats=1)


@pytest.mark.slow
def test_eight_reconcilers_many_rounds(ws: Workspace, tmp_path: Path, figures: dict[str, object]) -> None:
    _run_rounds(ws, tmp_path, figures, repeats=5)
