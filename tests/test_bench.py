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
