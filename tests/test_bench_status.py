"""The status benchmark runs with one command, prints its table, the EXPLAIN shows the index, and
the statement count is the same for one experiment and for all (a small row count keeps it quick)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_status_bench_runs_and_uses_the_index() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "bench.status", "--rows", "20000", "--users", "2000",
                          "--experiments", "5", "--repeat", "1"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = dict(re.findall(r"^\| ((?:one|all) experiments?, [^|]+) \| ([\d,]+) \|", run.stdout, re.M))
    assert set(rows) == {"one experiment, 7 days", "one experiment, 24 hours", "all experiments, 7 days",
                         "all experiments, 24 hours"}
    assert int(rows["all experiments, 7 days"].replace(",", "")) == 20_000
    statements = re.findall(r"^\| [^|]+ \| [\d,]+ \| [\d.]+ \| [\d.]+ \| \d+ \| (\d+) \|", run.stdout, re.M)
    assert len(set(statements)) == 1, statements
    # Each version's window is a range scan of the (variant_version_id, created_at) index.
    assert "Index Cond: ((variant_version_id = w.version_id) AND (created_at >= w.since) AND (created_at < w.until))" \
        in run.stdout
