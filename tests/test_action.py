"""The GitHub Action (`action.yml`): its script, `scripts/action.sh`, run as the Action runs it.

A manifests repository of a team using `uses: <owner>/expctl@v1` holds only `experiments.d/`: no
expctl sources, no `examples/`. The test builds such a repository (two of this repository's
manifests, their api keys as `from_env` references that the calling workflow passes as secrets
in `env:`), and runs the script with the Action's inputs as `INPUT_*` variables and
`GITHUB_OUTPUT` pointing at a file, against the suite's real PostgreSQL and Redis. The install step
is skipped (`EXPCTL_BIN`: the suite's own expctl), to keep the test fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from expctl.adapters.crypto import generate_byok_key
from expctl.adapters.store.db import connect

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "action.sh"
EXPCTL = Path(sys.executable).parent / "expctl"
MARKER = "<!-- expctl-plan -->"
MEMBERSHIP_KEY = "ai-gateway.model-experiments:experimented-public-ids"
MANIFESTS = ("preview-foo-rc-bakeoff.yaml", "preview-bar-routing.yaml")

_FROM_FILE = re.compile(r"\{from_file: examples/secrets/([a-z0-9-]+)\}")


def _key_name(secret_file: str) -> str:
    return f"{secret_file.upper().replace('-', '_')}_KEY"


@pytest.fixture
def manifests_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git repository with only experiments.d/; returns it and the api keys (name -> value)."""
    root = tmp_path / "manifests"
    (root / "experiments.d").mkdir(parents=True)
    keys: dict[str, str] = {}
    for name in MANIFESTS:
        source = (REPO / "experiments.d" / name).read_text(encoding="utf-8")
        for secret_file in _FROM_FILE.findall(source):
            keys[_key_name(secret_file)] = f"test-{secret_file}-{os.urandom(8).hex()}"
        rewritten = _FROM_FILE.sub(lambda m: f"{{from_env: {_key_name(m.group(1))}}}", source)
        (root / "experiments.d" / name).write_text(rewritten, encoding="utf-8")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "manifests"]):
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True, timeout=60)
    assert not (root / "src").exists() and not (root / "pyproject.toml").exists()
    return root, keys


def _run_action(
    tmp_path: Path, repo: Path, step: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Runs scripts/action.sh as the composite Action's step does; returns it and its outputs."""
    work = tmp_path / step
    work.mkdir()
    github_output = work / "github_output"
    github_output.touch()
    scrubbed = {"DATABASE_URL", "REDIS_URL", "BYOK_ENCRYPTION_KEY", "OUT_DIR", "EXPCTL_DIR", "EXPCTL_GATEWAY_PROFILE"}
    full_env = {k: v for k, v in os.environ.items() if k not in scrubbed and not k.startswith(("INPUT_", "GITHUB_"))}
    full_env.update(
        CI="true",
        EXPCTL_BIN=str(EXPCTL),
        INPUT_WORKING_DIRECTORY=str(repo),
        RUNNER_TEMP=str(work / "runner-temp"),
        GITHUB_OUTPUT=str(github_output),
        GITHUB_SHA="0123456789abcdef0123456789abcdef01234567",
    )
    (work / "runner-temp").mkdir()
    full_env.update(env)
    done = subprocess.run(
        ["bash", str(SCRIPT)], cwd=work, env=full_env, capture_output=True, text=True, timeout=300, check=False
    )
    outputs = dict(line.split("=", 1) for line in github_output.read_text(encoding="utf-8").splitlines() if line)
    return done, outputs


def _bound_experiments(db_url: str) -> dict[str, str]:
    with connect(db_url) as conn:
        rows = conn.execute(
            text("SELECT b.name, e.status FROM expctl_binding b JOIN model_experiment e ON e.id = b.experiment_id")
        )
        return {str(r.name): str(r.status) for r in rows}


def _membership(redis_url: str) -> list[str] | None:
    with redis.Redis.from_url(redis_url) as client:
        raw = client.get(MEMBERSHIP_KEY)
    return None if raw is None else sorted(json.loads(raw))


def test_action_plans_reconciles_and_replans_a_manifests_only_repository(
    db_url: str, redis_url: str, manifests_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, keys = manifests_repo
    init = subprocess.run(
        [str(EXPCTL), "db", "init", "--database-url", db_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert init.returncode == 0, init.stderr
    byok = generate_byok_key()
    servers = {"DATABASE_URL": db_url, "REDIS_URL": redis_url}
    secrets = [byok, *keys.values()]

    # 1. Plan in a pull request: read-only, no BYOK key, annotations on (as on GitHub).
    done, outputs = _run_action(tmp_path, repo, "plan", INPUT_COMMAND="plan", GITHUB_ACTIONS="true", **servers, **keys)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "0"
    assert Path(outputs["expctl"]) == EXPCTL
    comment = Path(outputs["comment-file"]).read_text(encoding="utf-8")
    assert comment.splitlines()[0] == MARKER
    assert "0 refused" in comment
    for name in ("preview-foo-rc-bakeoff", "preview-bar-routing"):
        assert name in comment
    plan = json.loads(Path(outputs["plan-file"]).read_text(encoding="utf-8"))
    assert sorted(e["name"] for e in plan["experiments"]) == ["preview-bar-routing", "preview-foo-rc-bakeoff"]
    assert plan["summary"]["total"] > 0 and plan["summary"]["refused"] == 0
    assert plan["plan_id"] in comment
    assert _bound_experiments(db_url) == {}, "a plan applies nothing"

    # 2. Reconcile on merge: the write credentials, the BYOK key and the api keys as env.
    summary = tmp_path / "step_summary.md"
    done, outputs = _run_action(
        tmp_path, repo, "reconcile", INPUT_COMMAND="reconcile", BYOK_ENCRYPTION_KEY=byok,
        GITHUB_STEP_SUMMARY=str(summary), **servers, **keys,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "0"
    assert Path(outputs["plan-file"]).is_file()
    assert _bound_experiments(db_url) == {"preview-foo-rc-bakeoff": "active", "preview-bar-routing": "draft"}
    assert _membership(redis_url) == ["preview/preview-foo"]
    summary_text = summary.read_text(encoding="utf-8")
    assert "Reconciled" in summary_text and "preview-foo-rc-bakeoff" in summary_text

    # 3. Plan again (with the keys, so that they are compared too): nothing left to do.
    done, outputs = _run_action(
        tmp_path, repo, "replan", INPUT_COMMAND="plan", BYOK_ENCRYPTION_KEY=byok, **servers, **keys
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "0"
    assert "No changes" in Path(outputs["comment-file"]).read_text(encoding="utf-8")
    replan = json.loads(Path(outputs["plan-file"]).read_text(encoding="utf-8"))
    assert replan["summary"]["total"] == 0

    # No secret in any output, file or summary the Action wrote.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".md", ".json", ".log", ".txt", ""}]
    for secret in secrets:
        assert secret not in done.stdout + done.stderr
        assert secret not in summary_text
        for path in written:
            if "experiments.d" not in path.parts and ".git" not in path.parts:
                assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


def test_action_validate_follows_the_gateway_profile_input(
    manifests_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, _ = manifests_repo
    done, outputs = _run_action(tmp_path, repo, "validate", INPUT_COMMAND="validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "0"

    # Under 2026-05, the foo manifest's metadata block is an error (E213); with fail-on-error
    # false the step succeeds and the caller reads exit-code.
    done, outputs = _run_action(
        tmp_path, repo, "validate-2026-05", INPUT_COMMAND="validate", INPUT_GATEWAY_PROFILE="2026-05",
        INPUT_FAIL_ON_ERROR="false",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "1"
    assert "E213" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"INPUT_COMMAND": "apply"}, "command must be plan, reconcile or validate"),
        ({"INPUT_COMMAND": "plan", "INPUT_COMMENT": "yes"}, "comment must be true or false"),
        ({"INPUT_COMMAND": "reconcile", "INPUT_LOCK_TIMEOUT": "1; rm -rf /"}, "lock-timeout must be a number"),
    ],
)
def test_action_refuses_bad_inputs_before_running_anything(
    inputs: dict[str, str], message: str, manifests_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, _ = manifests_repo
    done, outputs = _run_action(tmp_path, repo, "bad", **inputs)
    assert done.returncode == 1
    assert message in done.stderr
    assert outputs == {}


def test_action_yml_maps_every_input_through_env() -> None:
    # zizmor checks template injection; this checks that the script reads what action.yml passes.
    action = (REPO / "action.yml").read_text(encoding="utf-8")
    script = SCRIPT.read_text(encoding="utf-8")
    for variable in re.findall(r"^\s+(INPUT_[A-Z_]+):", action, flags=re.MULTILINE):
        assert variable in script, variable
    assert "${{" not in action.split("run:", 1)[1]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_action_script_passes_shellcheck() -> None:
    done = subprocess.run(
        ["shellcheck", str(SCRIPT), str(REPO / "scripts" / "pr-plan.sh")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
