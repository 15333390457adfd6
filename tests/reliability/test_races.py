"""Deterministic races: the admin UI writes at the worst moment of an apply.

The subprocess rounds in test_concurrency.py hit random moments; here the admin write is injected
exactly between the apply's read of the state (under the advisory lock) and its first write, the
window no lock of ours covers unless the rows are locked. Whatever the admin did, the run must
either apply a plan that is still legal or apply nothing and say why (exit 1), never write a change
the new status forbids (docs/design.md#lifecycle: structure is frozen after draft, completed is terminal).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import expctl.adapters.cache
import expctl.app.service
import expctl.core.planner
from expctl.core.plan import Plan
from tests.reliability.helpers import (
    Proc,
    advisory_locks,
    child_env,
    exact_dump,
    logical_state,
    membership,
    reconcile_args,
    routed_ids,
    spawn,
    sql,
    wait_for,
)
from tests.workspace import UPSTREAM_A, Workspace, manifest

pytestmark = pytest.mark.reliability


def inject_after_planning(ws: Workspace, write: Callable[[], object]) -> list[int]:
    """Runs `write` (committed on its own connection) right after the apply has planned, once."""
    real = expctl.core.planner.build_plan
    calls: list[int] = []

    def build_plan_then_race(*args: Any, **kwargs: Any) -> Plan:
        plan = real(*args, **kwargs)
        if not calls:
            calls.append(1)
            write()
        return plan

    ws.monkeypatch.setattr(expctl.app.service, "build_plan", build_plan_then_race)
    return calls


def exp_id(ws: Workspace, name: str) -> str:
    return str(ws.experiment(name)["id"])


def test_admin_activates_a_draft_while_it_is_reweighted(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    assert ws.reconcile().code == 0
    reweighted = manifest("exp", "draft")
    reweighted["variants"][0]["weight"] = 5
    ws.write(reweighted)
    eid = exp_id(ws, "exp")
    inject_after_planning(ws, lambda: sql(ws.db_url, "UPDATE model_experiment SET status = 'active', "
                                                     "started_at = now(), updated_at = now() WHERE id = %s", (eid,)))
    result = ws.reconcile()
    assert result.code == 1, (result.out, result.err)
    assert "changed underneath this run" in result.err and "nothing was applied" in result.err
    # Structure is frozen once active: the reweight must not have landed on the now-active experiment.
    assert sql(ws.db_url, "SELECT weight FROM model_experiment_variant WHERE experiment_id = %s ORDER BY label",
               (eid,)) == [{"weight": 1}, {"weight": 1}]
    again = ws.reconcile()  # the next run sees the admin's activation and refuses the frozen edit
    assert again.code == 1 and "refused" in again.err


def test_admin_completes_an_experiment_while_it_is_hot_swapped(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    swapped = manifest("exp", "active")
    swapped["variants"][0]["upstream"] = {**UPSTREAM_A, "internal_id": "up-a2"}
    ws.write(swapped)
    eid = exp_id(ws, "exp")
    versions_before = sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment_variant_version")
    inject_after_planning(ws, lambda: sql(ws.db_url, "UPDATE model_experiment SET status = 'completed', "
                                                     "ended_at = now(), updated_at = now() WHERE id = %s", (eid,)))
    result = ws.reconcile()
    assert result.code == 1, (result.out, result.err)
    assert "changed underneath this run" in result.err and "nothing was applied" in result.err
    # Completed is terminal: no version row may be added to it.
    assert sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment_variant_version") == versions_before


def test_admin_pauses_what_the_run_pauses(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    ws.write(manifest("exp", "paused", description="and a new description"))
    eid = exp_id(ws, "exp")
    inject_after_planning(ws, lambda: sql(ws.db_url, "UPDATE model_experiment SET status = 'paused', "
                                                     "updated_at = now() WHERE id = %s", (eid,)))
    result = ws.reconcile()
    assert result.code == 1 and "changed underneath this run" in result.err, (result.out, result.err)
    assert ws.experiment("exp")["description"] is None  # nothing of the run was applied
    assert ws.reconcile().code == 0  # a re-run plans against the new state and converges
    assert logical_state(ws.db_url)["exp"]["description"] == "and a new description"


def test_admin_takes_the_public_id_the_run_activates(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"), manifest("other", "draft", public_id="preview/other"))
    assert ws.reconcile().code == 0
    ws.write(manifest("exp", "active"), manifest("other", "active", public_id="preview/other"))
    before = exact_dump(ws.db_url)
    inject_after_planning(ws, lambda: sql(ws.db_url, "INSERT INTO model_experiment (public_model_id, name, status) "
                                                     "VALUES ('preview/x', 'Made in the admin UI', 'active')"))
    result = ws.reconcile()
    assert result.code == 1, (result.out, result.err)
    assert "another experiment is already active or paused on that public_model_id" in result.err
    assert "nothing was applied" in result.err
    after = exact_dump(ws.db_url)
    after["model_experiment"] = [r for r in after["model_experiment"] if r["name"] != "Made in the admin UI"]
    assert after == before  # not even the other experiment's activation
    again = ws.reconcile()
    assert again.code == 1 and "Made in the admin UI" in again.out  # the refusal names the blocker


def test_a_slow_refresh_never_overwrites_a_newer_membership(ws: Workspace, tmp_path: Path) -> None:
    """Run A has committed and read the routed ids for its Redis refresh; before it writes them, run
    B applies a routing change and refreshes. A's write must not put the older membership back."""
    ws.write(manifest("exp", "active"), manifest("other", "active", public_id="preview/other"))
    b_dir = ws.root / "experiments-b.d"
    b_dir.mkdir()
    for m in (manifest("exp", "active"), manifest("other", "completed", public_id="preview/other")):
        (b_dir / f"{m['name']}.yaml").write_text(json.dumps(m))
    real = expctl.adapters.cache.Cache.refresh
    runs: list[Proc] = []

    def refresh_while_b_runs(cache: expctl.adapters.cache.Cache, membership: Any, changed: Any) -> list[str]:
        if not runs:
            runs.append(spawn(ws.root, reconcile_args(ws.db_url, ws.redis_url, "--dir", str(b_dir)),
                              child_env({"KEY_A": "secret-a", "KEY_B": "secret-b"}), tmp_path / "logs"))
            # B either finishes (nothing stops it) or waits for a lock A still holds.
            wait_for(lambda: runs[0].popen.poll() is not None or any(
                not lock["granted"] for lock in advisory_locks(ws.db_url)), 60, "run B to finish or wait")
        return real(cache, membership, changed)

    ws.monkeypatch.setattr(expctl.adapters.cache.Cache, "refresh", refresh_while_b_runs)
    assert ws.reconcile().code == 0
    done = runs[0].wait(60)
    assert done.code == 0 and "Applied" in done.out, done.err
    assert routed_ids(ws.db_url) == ["preview/x"]
    assert membership(ws.redis_url) == ["preview/x"], "an older membership overwrote the newer one"
