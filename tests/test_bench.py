"""The benchmark runs with one command and prints its table and ratios (a small N keeps it quick)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_and_prints_every_step_and_ratio(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "bench", "--sizes", "30", "--repeat", "1", "--workdir", str(tmp_path),
                          "--json", str(tmp_path / "figures.json")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    for step in ("floor", "validate", "plan (no changes)", "plan (10% changed)", "apply (create all)",
                 "reconcile (no-op)", "bare insert (executemany)", "bare insert (COPY)"):
        assert f"| 30 | {step} |" in run.stdout, step
    assert "N = 30: plan_to_floor_ratio = " in run.stdout and "apply_to_bare_insert_ratio = " in run.stdout
    assert "(target <" not in run.stdout  # verdicts are for N = 10,000 only
    assert (tmp_path / "figures.json").is_file()
    assert list(tmp_path.iterdir()) == [tmp_path / "figures.json"]  # servers and manifests cleaned up


def test_the_seeded_applied_record_is_what_expctl_records(tmp_path: Path) -> None:
    """The bench seeds the steady state: the record of each binding equals the planner's own."""
    from bench.generate import applied_record, experiments, write_manifests

    from expctl.adapters.manifest.load import load_desired
    from expctl.core import drift

    write_manifests(tmp_path / "m", 4)
    desired = {d.name: d for d in load_desired(tmp_path / "m")}
    for e in experiments(4):
        assert applied_record(e) == drift.applied_record(desired[e.name])
