"""Concurrent reconciles converge; plan needs nothing but SELECT rights."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy.engine import make_url

from tests.workspace import BYOK_B64, Workspace, manifest


def _spawn(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BYOK_ENCRYPTION_KEY": BYOK_B64, "KEY_A": "secret-a", "KEY_B": "secret-b"}
    return subprocess.Popen(
        [sys.executable, "-m", "expctl", *args, "--database-url", ws.db_url, "--redis-url", ws.redis_url],
        cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_four_concurrent_reconciles_converge(ws: Workspace) -> None:
    ws.write(*(manifest(f"exp-{i}", "active", public_id=f"preview/m{i}") for i in range(6)),
             manifest("draft-one", "draft", public_id="preview/d"))
    procs = [_spawn(ws, "reconcile", "--auto-approve", "--lock-timeout", "60") for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "")
               for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    applied = [out for _, out, _ in results if "Applied" in out]
    assert len(applied) == 1, "exactly one run writes; the others find nothing to do"
    assert ws.rows("SELECT count(*) AS n FROM model_experiment") == [{"n": 7}]
    assert ws.rows("SELECT count(*) AS n FROM model_experiment_variant") == [{"n": 14}]
    assert ws.rows("SELECT count(*) AS n FROM model_experiment_variant_version") == [{"n": 14}]
    assert ws.rows("SELECT count(*) AS n FROM expctl_binding") == [{"n": 7}]
    assert ws.membership() == [f"preview/m{i}" for i in range(6)]


def test_plan_works_with_a_select_only_role(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    ws.execute("DROP ROLE IF EXISTS expctl_plan_ro")
    ws.execute("CREATE ROLE expctl_plan_ro LOGIN")
    ws.execute("GRANT SELECT ON model_experiment, model_experiment_variant, model_experiment_variant_version, "
               "expctl_binding, expctl_run TO expctl_plan_ro")
    ro_url = make_url(ws.db_url).set(username="expctl_plan_ro").render_as_string(hide_password=False)
    ws.write(manifest("exp", "paused"))
    ws.db_url, rw_url = ro_url, ws.db_url
    try:
        result = ws.expctl("plan", "--detailed-exitcode")
        assert result.code == 2 and "paused" in result.out
        denied = ws.reconcile()
        assert denied.code == 1, denied
        assert "permission denied" in denied.err, denied.err
    finally:
        ws.db_url = rw_url
        ws.execute("DROP OWNED BY expctl_plan_ro")
        ws.execute("DROP ROLE expctl_plan_ro")
    assert ws.experiment("exp")["status"] == "active"
