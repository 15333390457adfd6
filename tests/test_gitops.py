"""GitOps glue: `scripts/pr-plan.sh` (the PR plan comment) against a real database, and the workflow linters.

The script runs `expctl` from PATH, so PATH starts with the directory of this interpreter (where
`pip install -e .` put the `expctl` entry point). Manifests reference `examples/secrets/...`
relative to the working directory, so each test runs in a temporary copy of experiments.d/ and
examples/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from expctl.adapters.crypto import generate_byok_key

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pr-plan.sh"
LINT_WORKFLOWS = REPO / ".ci" / "lint-workflows"
MARKER = "<!-- expctl-plan -->"
COMMENT_LIMIT = 65536
BIN_DIR = Path(sys.executable).parent

# Variables of the caller's environment that would change what the script or expctl does.
_SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "BYOK_ENCRYPTION_KEY",
    "EXPCTL_DIR",
    "EXPCTL_REDIS_PREFIX",
    "OUT_DIR",
    "EXPCTL",
    "PLAN_COMMIT",
    "GITHUB_SHA",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PATH"] = os.pathsep.join([str(BIN_DIR), env.get("PATH", "")])
    env.update(extra)
    return env


def _expctl(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN_DIR / "expctl"), *args],
        cwd=workdir,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _pr_plan(workdir: Path, out_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=workdir,
        env=_env(OUT_DIR=str(out_dir), **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _manifests(workdir: Path) -> dict[Path, list[dict[str, Any]]]:
    return {
        path: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted((workdir / "experiments.d").glob("*.yaml"))
    }


def _experiment_names(workdir: Path) -> list[str]:
    return [str(doc["name"]) for docs in _manifests(workdir).values() for doc in docs]


def _verdict_line(comment: str) -> str:
    """The bold verdict line of the plan's head (first lines, before any section)."""
    head = comment.split("\n####", 1)[0].splitlines()
    lines = [line for line in head if "**" in line and ("refused" in line or "No changes" in line)]
    assert lines, f"no verdict line in the comment's head: {head!r}"
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A temporary copy of the repository subset the manifests need: experiments.d/ and examples/."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "experiments.d", root / "experiments.d")
    shutil.copytree(REPO / "examples", root / "examples")
    return root


@pytest.fixture
def initialized_db(db_url: str, workdir: Path) -> str:
    done = _expctl(workdir, "db", "init", "--database-url", db_url)
    assert done.returncode == 0, done.stderr
    return db_url


def test_pr_plan_writes_the_sticky_comment_and_the_json_plan(
    initialized_db: str, redis_url: str, workdir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = _pr_plan(workdir, out, DATABASE_URL=initialized_db, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr

    comment = (out / "comment.md").read_text(encoding="utf-8")
    assert comment.splitlines()[0] == MARKER
    assert comment.count(MARKER) == 1
    verdict = _verdict_line(comment)
    assert "0 refused" in verdict
    names = _experiment_names(workdir)
    assert len(names) >= 3
    for name in names:
        assert name in comment
    assert len(comment) < COMMENT_LIMIT

    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["format_version"] == 1
    assert plan["summary"]["refused"] == 0
    assert sorted(e["name"] for e in plan["experiments"]) == sorted(names)
    # The footer names the plan that reviewers approve, and says when it takes effect.
    footer = comment.rsplit("\n---\n", 1)[1]
    assert plan["plan_id"] in footer
    assert "apply happens on merge" in footer
    assert (out / "exit_code").read_text().strip() == "0"


def _reweight_an_active_experiment(workdir: Path) -> str:
    """Changes the first variant's weight of the first active experiment; returns its name."""
    for path, docs in _manifests(workdir).items():
        for doc in docs:
            if doc.get("status") == "active":
                doc["variants"][0]["weight"] = int(doc["variants"][0]["weight"]) + 2
                path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
                return str(doc["name"])
    raise AssertionError("the examples have no active experiment")


def test_pr_plan_with_a_refused_change_exits_1_and_names_it(
    initialized_db: str, redis_url: str, workdir: Path, tmp_path: Path
) -> None:
    seeded = _expctl(
        workdir,
        "reconcile",
        "--auto-approve",
        "--database-url",
        initialized_db,
        "--redis-url",
        redis_url,
        BYOK_ENCRYPTION_KEY=generate_byok_key(),
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    name = _reweight_an_active_experiment(workdir)

    # As in a pull request: the read-only plan runs without the BYOK key.
    out = tmp_path / "out"
    done = _pr_plan(workdir, out, DATABASE_URL=initialized_db, REDIS_URL=redis_url)
    assert done.returncode == 1, done.stderr

    comment = (out / "comment.md").read_text(encoding="utf-8")
    assert comment.splitlines()[0] == MARKER
    verdict = _verdict_line(comment)
    assert "1 refused" in verdict
    refusals = comment.split("Refused changes", 1)[1].split("\n####", 1)[0]
    assert name in refusals
    assert "weight" in refusals
    assert len(comment) < COMMENT_LIMIT
    assert (out / "exit_code").read_text().strip() == "1"

    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["summary"]["refused"] == 1
    refused = [(e["name"], c["kind"]) for e in plan["experiments"] for c in e["changes"] if not c["allowed"]]
    assert refused == [(name, "reweight_variant")]


def test_pr_plan_with_invalid_manifests_comments_the_problems(workdir: Path, tmp_path: Path) -> None:
    bad = workdir / "experiments.d" / "preview-foo-rc-bakeoff.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("status: active", "status: running"), encoding="utf-8")
    out = tmp_path / "out"
    # Validation comes first and needs no database: this URL is never used.
    done = _pr_plan(workdir, out, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 1

    comment = (out / "comment.md").read_text(encoding="utf-8")
    assert comment.splitlines()[0] == MARKER
    assert "invalid" in comment
    assert "experiments.d/preview-foo-rc-bakeoff.yaml:" in comment
    assert not (out / "plan.json").exists()


def test_pr_plan_failure_keeps_connection_details_out_of_the_comment(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _pr_plan(workdir, out, DATABASE_URL="postgresql://planner:hunter2@127.0.0.1:1/gateway", CI="true")
    assert done.returncode == 1

    comment = (out / "comment.md").read_text(encoding="utf-8")
    assert comment.splitlines()[0] == MARKER
    assert "failed" in comment
    assert "127.0.0.1" not in comment
    assert "hunter2" not in comment
    assert not (out / "plan.json").exists()


_FAKE_EXPCTL = """#!/usr/bin/env bash
# Stands in for expctl: validation passes; the plan is the markdown in $FAKE_PLAN_MD.
set -eu
case "$1" in
  validate) echo "OK"; exit 0 ;;
  plan)
    while [ $# -gt 0 ]; do
      if [ "$1" = "--out" ]; then printf '{"format_version": 1, "plan_id": "sha256:fake"}\\n' > "$2"; fi
      shift
    done
    cat "$FAKE_PLAN_MD"
    ;;
esac
"""


def _plan_markdown_of_length(chars: int) -> str:
    head = f"{MARKER}\n### expctl plan\n**1 change, 0 irreversible, 0 traffic shifts, 0 refused**\n\n"
    lines, i = [head], 0
    while sum(map(len, lines)) < chars - 200:
        i += 1
        lines.append(f"- ✅ détail {i:05d} of a very large plan, padded to a realistic line length\n")
    tail = "**Cache membership:** unchanged\n"
    body = "".join(lines)
    return body + "x" * (chars - len(body) - len(tail) - 1) + "\n" + tail


def test_pr_plan_keeps_the_comment_within_githubs_limit(workdir: Path, tmp_path: Path) -> None:
    # The renderer fits the plan to exactly the limit; the script's footer must not push it over.
    markdown = _plan_markdown_of_length(COMMENT_LIMIT)
    assert len(markdown) == COMMENT_LIMIT
    plan_md = tmp_path / "plan.md"
    plan_md.write_text(markdown, encoding="utf-8")
    fake = tmp_path / "fake-expctl"
    fake.write_text(_FAKE_EXPCTL, encoding="utf-8")
    fake.chmod(0o755)
    out = tmp_path / "out"
    done = _pr_plan(workdir, out, EXPCTL=str(fake), FAKE_PLAN_MD=str(plan_md))
    assert done.returncode == 0, done.stderr

    comment = (out / "comment.md").read_text(encoding="utf-8")
    assert len(comment) <= COMMENT_LIMIT
    assert len(comment) > COMMENT_LIMIT - 2000  # cut, not dropped
    assert comment.splitlines()[0] == MARKER
    assert "0 refused" in _verdict_line(comment)
    assert "cut to fit" in comment
    footer = comment.rsplit("\n---\n", 1)[1]
    assert "sha256:fake" in footer
    assert "apply happens on merge" in footer


def _workflow_tool(name: str) -> str | None:
    local = REPO / ".venv" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name, path=os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]))


@pytest.mark.skipif(
    not _workflow_tool("actionlint") or not _workflow_tool("zizmor"), reason="actionlint and zizmor are not installed"
)
def test_workflows_pass_actionlint_and_zizmor() -> None:
    done = subprocess.run(
        ["bash", str(LINT_WORKFLOWS)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
