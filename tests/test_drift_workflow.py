"""The scheduled drift workflow (.github/workflows/drift.yml): its two scripts.

`scripts/drift-check.sh` runs the real expctl against the suite's PostgreSQL and Redis.
`scripts/drift-issue.sh` talks to GitHub through `gh`; here a fake `gh` first on PATH stands in for
GitHub: it records every call (with the body file's text) and serves a canned `gh issue list`.
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
import redis

from tests.workspace import BYOK_B64, Workspace, manifest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "drift-check.sh"
ISSUE = REPO / "scripts" / "drift-issue.sh"
WORKFLOW = REPO / ".github" / "workflows" / "drift.yml"
BIN_DIR = Path(sys.executable).parent
TITLE = "expctl: the gateway has drifted from main's manifests"
LABEL = "expctl-drift"
BODY_LIMIT = 65536
MEMBERSHIP_KEY = "ai-gateway.model-experiments:experimented-public-ids"

FAKE_GH = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
call = {{"args": args}}
if "--body-file" in args:
    with open(args[args.index("--body-file") + 1], encoding="utf-8") as body:
        call["body"] = body.read()
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\\n")
if args[:2] == ["issue", "list"]:
    with open(os.environ["FAKE_GH_ISSUES"], encoding="utf-8") as issues:
        sys.stdout.write(issues.read())
elif args[:2] == ["issue", "create"]:
    print("https://github.com/acme/gateway-experiments/issues/7")
"""


class FakeGitHub:
    """A fake `gh` on PATH: `issues` is what `gh issue list` answers, `calls()` what was asked."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "fake-bin"
        self.bin.mkdir()
        gh = self.bin / "gh"
        gh.write_text(FAKE_GH, encoding="utf-8")
        gh.chmod(0o755)
        self.log = tmp_path / "gh-calls.jsonl"
        self.issues_file = tmp_path / "gh-issues.json"
        self.issues: list[dict[str, Any]] = []

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def commands(self) -> list[str]:
        return [" ".join(call["args"][:2]) for call in self.calls()]

    def run(self, drift_dir: Path) -> subprocess.CompletedProcess[str]:
        self.log.unlink(missing_ok=True)
        self.issues_file.write_text(json.dumps(self.issues), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))}
        env.update(PATH=os.pathsep.join([str(self.bin), env.get("PATH", "")]), FAKE_GH_LOG=str(self.log),
                   FAKE_GH_ISSUES=str(self.issues_file), REPO="acme/gateway-experiments", DRIFT_DIR=str(drift_dir),
                   DRIFT_COMMIT="c0ffee1", RUN_URL="https://github.com/acme/gateway-experiments/actions/runs/9")
        return subprocess.run(["bash", str(ISSUE)], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def gh(tmp_path: Path) -> FakeGitHub:
    return FakeGitHub(tmp_path)


def _reports(folder: Path, plan_rc: int, cache_rc: int, plan: str = "### expctl plan\n\n1 change\n",
             cache: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.md").write_text(plan, encoding="utf-8")
    (folder / "plan_exit").write_text(f"{plan_rc}\n", encoding="utf-8")
    (folder / "cache.txt").write_text(cache, encoding="utf-8")
    (folder / "cache_exit").write_text(f"{cache_rc}\n", encoding="utf-8")
    return folder


def _open_issue(body: str, number: int = 12) -> dict[str, Any]:
    return {"number": number, "title": TITLE, "body": body}


# --- drift-issue.sh ----------------------------------------------------------------------------


def test_drift_opens_one_labelled_issue_with_the_plan_and_the_cache_report(gh: FakeGitHub, tmp_path: Path) -> None:
    # An issue with the label but another title is someone else's: it is not updated.
    gh.issues = [{"number": 3, "title": "drift in staging? <question>", "body": "…"}]
    drift = _reports(tmp_path / "d", 2, 2, cache="drift: redis://***@cache:6379/0: membership differs <x>\n")
    done = gh.run(drift)
    assert done.returncode == 0, done.stderr
    assert gh.commands() == ["issue list", "label create", "issue create"]
    listed, label, created = gh.calls()
    assert listed["args"][listed["args"].index("--label") + 1] == LABEL
    assert label["args"][2] == LABEL and "--force" in label["args"]
    args = created["args"]
    assert args[args.index("--title") + 1] == TITLE and args[args.index("--label") + 1] == LABEL
    body = created["body"]
    assert body.startswith("<!-- expctl-drift digest=")
    assert "commit `c0ffee1`" in body and "actions/runs/9" in body
    assert "`expctl plan --detailed-exitcode` exit 2, `expctl cache check` exit 2" in body
    assert "drift: redis://***@cache:6379/0: membership differs &lt;x&gt;" in body
    assert body.rstrip().endswith("1 change")


def test_the_same_drift_again_refreshes_the_issue_without_a_comment(gh: FakeGitHub, tmp_path: Path) -> None:
    drift = _reports(tmp_path / "d", 2, 0)
    assert gh.run(drift).returncode == 0
    first_body = gh.calls()[-1]["body"]
    gh.issues = [_open_issue(first_body.replace("\n", "\r\n"))]  # as GitHub may return it
    done = gh.run(drift)
    assert done.returncode == 0, done.stderr
    assert gh.commands() == ["issue list", "issue edit"]
    edit = gh.calls()[1]
    assert edit["args"][2] == "12" and "In sync." in edit["body"]
    assert "same drift" in done.stdout


def test_a_different_drift_updates_the_issue_and_comments(gh: FakeGitHub, tmp_path: Path) -> None:
    assert gh.run(_reports(tmp_path / "a", 2, 0)).returncode == 0
    gh.issues = [_open_issue(gh.calls()[-1]["body"])]
    done = gh.run(_reports(tmp_path / "b", 2, 0, plan="### expctl plan\n\n2 changes\n"))
    assert done.returncode == 0, done.stderr
    assert gh.commands() == ["issue list", "issue edit", "issue comment"]
    assert gh.calls()[1]["body"].rstrip().endswith("2 changes")
    comment = gh.calls()[2]["args"]
    assert comment[2] == "12" and "drift changed at commit `c0ffee1`" in comment[comment.index("--body") + 1]


def test_no_drift_closes_the_open_issue(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.issues = [_open_issue("<!-- expctl-drift digest=0123456789abcdef -->\nold")]
    done = gh.run(_reports(tmp_path / "d", 0, 0))
    assert done.returncode == 0, done.stderr
    assert gh.commands() == ["issue list", "issue close"]
    close = gh.calls()[1]["args"]
    assert close[2] == "12" and "No drift any more at commit `c0ffee1`" in close[close.index("--comment") + 1]


def test_no_drift_and_no_issue_changes_nothing(gh: FakeGitHub, tmp_path: Path) -> None:
    done = gh.run(_reports(tmp_path / "d", 0, 0))
    assert done.returncode == 0, done.stderr
    assert gh.commands() == ["issue list"]


@pytest.mark.parametrize(("plan_rc", "cache_rc"), [(1, 0), (0, 1), (5, 2), (2, 3)])
def test_an_error_is_not_drift_and_touches_no_issue(gh: FakeGitHub, tmp_path: Path, plan_rc: int,
                                                    cache_rc: int) -> None:
    gh.issues = [_open_issue("<!-- expctl-drift digest=0123456789abcdef -->\nold")]
    done = gh.run(_reports(tmp_path / "d", plan_rc, cache_rc))
    assert done.returncode == 1
    assert "expctl failed, which is not drift" in done.stderr
    assert gh.calls() == [], "neither opened, updated nor closed"


def test_missing_reports_fail_without_calling_github(gh: FakeGitHub, tmp_path: Path) -> None:
    done = gh.run(tmp_path / "nothing-here")
    assert done.returncode == 1 and "run scripts/drift-check.sh first" in done.stderr
    assert gh.calls() == []


def test_a_huge_plan_is_cut_to_fit_an_issue(gh: FakeGitHub, tmp_path: Path) -> None:
    plan = "### expctl plan\n\n" + "".join(f"- change {i} → ünïcödé\n" for i in range(8000))
    assert len(plan) > BODY_LIMIT
    done = gh.run(_reports(tmp_path / "d", 2, 2, plan=plan, cache="drift: redis://cache:6379/0: missing\n"))
    assert done.returncode == 0, done.stderr
    body = gh.calls()[-1]["body"]
    assert len(body) <= BODY_LIMIT, len(body)
    assert len(body) > BODY_LIMIT - 200, "the plan fills what is left"
    assert "drift: redis://cache:6379/0: missing" in body, "the cache report comes first and is kept"
    assert "cut to fit an issue" in body
    assert body.index("- change 0 ") < body.index("cut to fit an issue")


# --- drift-check.sh (the real expctl) ----------------------------------------------------------


def _check(ws: Workspace, out_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "EXPCTL_DIR", "EXPCTL_ENV")}
    env.update(DATABASE_URL=ws.db_url, REDIS_URL=ws.redis_url, BYOK_ENCRYPTION_KEY=BYOK_B64, KEY_A="secret-a",
               KEY_B="secret-b", EXPCTL=str(BIN_DIR / "expctl"), OUT_DIR=str(out_dir))
    env.update(extra)
    return subprocess.run(["bash", str(CHECK)], cwd=ws.root, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def _codes(out_dir: Path) -> tuple[int, int]:
    return (int((out_dir / "plan_exit").read_text()), int((out_dir / "cache_exit").read_text()))


def test_check_then_issue_opens_on_drift_and_closes_after_reconcile(ws: Workspace, gh: FakeGitHub,
                                                                     tmp_path: Path) -> None:
    ws.write(manifest("exp", "active", public_id="preview/drift"))
    out = tmp_path / "drift"
    done = _check(ws, out, EXPCTL_ENV="")  # an unset repository variable arrives as ""
    assert done.returncode == 0, done.stderr
    assert _codes(out) == (2, 2) and "DRIFT" in done.stdout
    assert "preview/drift" in (out / "plan.md").read_text(encoding="utf-8")
    assert gh.run(out).returncode == 0
    assert gh.commands()[-1] == "issue create" and "preview/drift" in gh.calls()[-1]["body"]

    assert ws.reconcile().code == 0
    gh.issues = [_open_issue(gh.calls()[-1]["body"])]
    done = _check(ws, out)
    assert done.returncode == 0, done.stderr
    assert _codes(out) == (0, 0) and "no drift" in done.stdout
    assert gh.run(out).returncode == 0
    assert gh.commands() == ["issue list", "issue close"]


def test_check_sees_redis_drift(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "active", public_id="preview/drift"))
    assert ws.reconcile().code == 0
    redis.Redis.from_url(ws.redis_url).delete(MEMBERSHIP_KEY)
    out = tmp_path / "drift"
    done = _check(ws, out)
    assert done.returncode == 0, done.stderr
    assert _codes(out)[1] == 2
    assert (out / "cache.txt").read_text(encoding="utf-8").startswith("drift: ")


def test_check_fails_on_an_expctl_error_and_keeps_it_in_the_log(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "draft"))
    out = tmp_path / "drift"
    done = _check(ws, out, DATABASE_URL="postgresql://expctl:hunter2-canary@127.0.0.1:1/gateway")
    assert done.returncode == 1
    assert "::error title=expctl drift check::expctl failed (plan exit 1" in done.stdout
    assert "hunter2-canary" not in done.stdout + done.stderr
    assert _codes(out)[0] == 1 and (out / "plan.md").read_text(encoding="utf-8") == ""


def test_check_refuses_to_run_without_the_byok_key(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "draft"))
    done = _check(ws, tmp_path / "drift", BYOK_ENCRYPTION_KEY="")
    assert done.returncode == 1 and "BYOK_ENCRYPTION_KEY is not set" in done.stderr
    assert not (tmp_path / "drift" / "plan_exit").exists()


def test_the_workflow_splits_the_secrets_from_the_write_token() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    check, issue = text.split("\n  issue:\n")
    assert "schedule:" in text and "workflow_dispatch:" in text and "permissions: {}" in text
    assert "issues: write" not in check and "secrets." in check and "EXPCTL_ENV: ${{ vars.EXPCTL_ENV }}" in check
    assert "issues: write" in issue and "secrets." not in issue
    assert "scripts/drift-check.sh" in check and "scripts/drift-issue.sh" in issue


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_drift_scripts_pass_shellcheck() -> None:
    done = subprocess.run(["shellcheck", str(CHECK), str(ISSUE)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
