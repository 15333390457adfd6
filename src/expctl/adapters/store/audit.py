"""The audit table of runs: who ran what, at which git revision, with which plan, and the outcome.

Only plan ids, counts and experiment names are stored; never secrets, fingerprints or values.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select

from expctl.adapters.store.tables import expctl_run
from expctl.core.plan import Plan


def actor(env: Mapping[str, str]) -> str | None:
    for name in ("EXPCTL_ACTOR", "GITHUB_ACTOR", "USER", "LOGNAME"):
        if env.get(name):
            return env[name][:200]
    return None


def git_revision(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_SHA"):
        return env["GITHUB_SHA"][:64]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()[:64] or None if done.returncode == 0 else None


def summary_record(plan: Plan) -> dict[str, Any]:
    return {
        "counts": plan.summary(),
        "experiments": [e.name for e in plan.experiments if e.changes],
    }


def record(conn: Connection, command: str, plan: Plan | None, outcome: str, env: Mapping[str, str]) -> None:
    conn.execute(insert(expctl_run).values(
        command=command, actor=actor(env), git_revision=git_revision(env),
        plan_id=plan.plan_id if plan else None, outcome=outcome,
        summary=summary_record(plan) if plan else None, finished_at=func.clock_timestamp(),
    ))


def recent_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    query = select(expctl_run).order_by(expctl_run.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]
