"""Running expctl at a company: environments from expctl.toml, scopes sharing one database, `--only`
targeting, and `db init` migrating a binding table made before scopes — on a real PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import yaml

from tests.servers import PostgresEndpoint
from tests.workspace import BYOK_B64, MEMBERSHIP_KEY, Workspace, manifest

TOML = """\
scope = "team-search"

[environments.staging]
database_url_env = "STAGING_DATABASE_URL"
redis_url_env = "STAGING_REDIS_URL"
byok_key_env = "STAGING_BYOK_ENCRYPTION_KEY"

[environments.production]
manifest_dir = "prod"
"""


def write(folder: Path, *manifests: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.yaml"):
        path.unlink()
    for m in manifests:
        (folder / f"{m['name']}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def other_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


@pytest.fixture
def second_db(pg_server: PostgresEndpoint) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


def run_env(ws: Workspace, *args: str) -> Any:
    """The CLI without the workspace's --database-url/--redis-url: the environment says where to go."""
    from expctl.cli import run

    ws.capsys.readouterr()
    code = run(list(args))
    out, err = ws.capsys.readouterr()
    return code, out, err


def test_staging_and_production_plan_and_apply_independently(
    ws: Workspace, second_db: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (ws.root / "expctl.toml").write_text(TOML)
    write(ws.dir / "staging", manifest("search-canary", "active", "preview/search"))
    write(ws.root / "prod", manifest("search-stable", "active", "preview/search-stable"))
    prod_redis = other_redis_db(ws.redis_url, 5)
    redis.Redis.from_url(prod_redis).flushdb()
    monkeypatch.setenv("STAGING_DATABASE_URL", ws.db_url)
    monkeypatch.setenv("STAGING_REDIS_URL", ws.redis_url)
    monkeypatch.setenv("STAGING_BYOK_ENCRYPTION_KEY", BYOK_B64)
    monkeypatch.setenv("PRODUCTION_DATABASE_URL", second_db)
    monkeypatch.setenv("PRODUCTION_REDIS_URL", prod_redis)

    code, _, err = run_env(ws, "plan")
    assert code == 1 and "defines environments (production, staging): choose one with --env" in err

    code, out, err = run_env(ws, "plan", "--env", "staging", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["environment"], plan["scope"]) == ("staging", "team-search")
    assert [e["name"] for e in plan["experiments"]] == ["search-canary"]
    assert run_env(ws, "plan", "--env", "staging")[1].splitlines()[0].endswith(
        "(gateway profile 2026-11, environment staging, scope team-search)")

    assert run_env(ws, "reconcile", "--env", "staging", "--auto-approve")[0] == 0
    assert [r["name"] for r in ws.rows("SELECT name FROM expctl_binding")] == ["search-canary"]
    assert [r["scope"] for r in ws.rows("SELECT scope FROM expctl_binding")] == ["team-search"]
    assert ws.membership() == ["preview/search"]

    # Production has its own database, Redis and BYOK key; BYOK_ENCRYPTION_KEY (set for the workspace)
    # is never borrowed by an environment that names its own variable.
    assert run_env(ws, "db", "init", "--env", "production")[0] == 0
    code, _, err = run_env(ws, "reconcile", "--env", "production", "--auto-approve")
    assert code == 1 and "BYOK_ENCRYPTION_KEY is required" in err
    monkeypatch.setenv("PRODUCTION_BYOK_ENCRYPTION_KEY", BYOK_B64)
    code, out, err = run_env(ws, "reconcile", "--env", "production", "--auto-approve")
    assert code == 0, err
    assert [r["name"] for r in ws.rows("SELECT name FROM expctl_binding")] == ["search-canary"]  # staging untouched
    assert json.loads(redis.Redis.from_url(prod_redis).get(MEMBERSHIP_KEY) or b"null") == ["preview/search-stable"]
    assert ws.membership() == ["preview/search"]
    for env in ("staging", "production"):
        assert run_env(ws, "plan", "--env", env, "--detailed-exitcode")[0] == 0


def test_environment_misuse_is_refused_before_anything_connects(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws.root / "expctl.toml").write_text(TOML)
    code, _, err = run_env(ws, "plan", "--env", "qa")
    assert code == 1 and "unknown environment 'qa'" in err and "production, staging" in err
    code, _, err = run_env(ws, "plan", "--env", "production")
    assert code == 1 and "PRODUCTION_DATABASE_URL, which is not set" in err
    monkeypatch.setenv("STAGING_DATABASE_URL", ws.db_url)
    code, _, err = run_env(ws, "plan", "--env", "staging", "--database-url", ws.db_url)
    assert code == 1 and "--database-url cannot be combined with --env staging" in err
    code, _, err = run_env(ws, "plan", "--env", "staging", "--dir", "elsewhere")
    assert code == 1 and "differs from environment staging's manifest_dir" in err


def test_two_scopes_in_one_database_never_touch_each_other(ws: Workspace) -> None:
    # Team A: this workspace (scope "default"); team B: another repository sharing the database.
    ws.write(manifest("search", "active", "preview/a-search"), manifest("scratch", "draft", "preview/a-scratch"))
    assert ws.reconcile().code == 0
    team_b = ws.root / "team-b"
    write(team_b / "experiments.d", manifest("search", "active", "preview/b-search"))
    (team_b / "expctl.toml").write_text('scope = "team-b"\n')
    ws.monkeypatch.chdir(team_b)
    plan = json.loads(ws.expctl("plan", "--format", "json").out)
    assert [c["kind"] for e in plan["experiments"] for c in e["changes"]][:1] == ["create_experiment"]
    assert {u["name"]: u["scope"] for u in plan["unmanaged"]} == {"Search": "default", "Scratch": "default"}
    assert ws.reconcile("--prune").code == 0  # prune sees only team B's bindings
    assert sorted((r["scope"], r["name"]) for r in ws.rows("SELECT scope, name FROM expctl_binding")) == [
        ("default", "scratch"), ("default", "search"), ("team-b", "search")]
    assert ws.membership() == ["preview/a-search", "preview/b-search"]
    assert "Nothing to import" in ws.expctl("import", "--out-dir", str(team_b / "imported")).out

    ws.monkeypatch.chdir(ws.root)
    done = ws.reconcile()
    assert done.code == 0 and "No changes." in done.out, done.out
    assert "scope team-b (never touched): Search (preview/b-search, active)" in done.out


def test_only_leaves_the_rest_alone_and_a_saved_targeted_plan_needs_the_same_target(ws: Workspace) -> None:
    ws.write(manifest("alpha", "active", "preview/alpha"), manifest("beta", "active", "preview/beta"))
    assert ws.reconcile().code == 0
    ws.write(manifest("alpha", "paused", "preview/alpha"))  # beta's manifest is gone: a refusal, unless not targeted
    assert ws.expctl("plan").code == 1
    targeted = ws.expctl("plan", "--only", "al*", "--out", "plan.json")
    assert targeted.code == 0, targeted.err
    assert "partial: only 'al*'" in targeted.out and "Partial plan (--only)" in targeted.out
    assert "beta" not in targeted.out.split("\n", 1)[1]

    stale = ws.expctl("apply", "plan.json", "--auto-approve")
    assert stale.code == 4 and "it targets only 'al*', this run targets every manifest" in stale.err
    assert ws.experiment("alpha")["status"] == "active"
    assert ws.expctl("apply", "plan.json", "--only", "al*", "--auto-approve").code == 0
    assert ws.experiment("alpha")["status"] == "paused" and ws.experiment("beta")["status"] == "active"
    assert ws.membership() == ["preview/alpha", "preview/beta"]

    typo = ws.expctl("plan", "--only", "gamma")
    assert typo.code == 1 and "--only 'gamma' matches no manifest" in typo.err


def test_db_init_migrates_bindings_made_before_scopes(ws: Workspace) -> None:
    ws.write(manifest("kept", "active", "preview/kept"))
    assert ws.reconcile().code == 0
    experiment_id = ws.experiment("kept")["id"]
    ws.execute("DROP TABLE expctl_binding")
    ws.execute("CREATE TABLE expctl_binding (name text PRIMARY KEY, experiment_id uuid NOT NULL UNIQUE "
               "REFERENCES model_experiment(id) ON DELETE CASCADE, bound_at timestamptz NOT NULL DEFAULT now())")
    ws.execute("INSERT INTO expctl_binding (name, experiment_id) VALUES ('kept', :e)", e=experiment_id)

    old = ws.expctl("plan")
    assert old.code == 1 and "run `expctl db init`" in old.err and "every binding is kept" in old.err
    init = ws.expctl("db", "init")
    assert init.code == 0 and "expctl_binding (added scope and applied" in init.out + init.err
    assert ws.rows("SELECT scope, name, applied FROM expctl_binding") == [
        {"scope": "default", "name": "kept", "applied": None}]
    assert ws.expctl("plan", "--detailed-exitcode").code == 0
    assert ws.expctl("db", "init").code == 0  # idempotent
    assert ws.reconcile().code == 0  # records what is applied from now on
    assert ws.rows("SELECT applied->>'status' AS status FROM expctl_binding") == [{"status": "active"}]


def test_validate_checks_every_environment_folder_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from expctl.cli import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "expctl.toml").write_text(TOML)
    # The same name and public id in both folders: fine, they are different deployments.
    write(tmp_path / "experiments.d" / "staging", manifest("search", "active", "preview/search"))
    write(tmp_path / "prod", manifest("search", "active", "preview/search"),
          manifest("broken", "active", "preview/broken", variants=[]) | {"colour": "red"})
    assert run(["validate"]) == 1
    out = capsys.readouterr().out
    assert "prod/broken.yaml" in out and "staging" not in out.split("problem")[0]
    assert run(["validate", "--env", "staging"]) == 0
    capsys.readouterr()


def test_every_database_command_offers_env_and_the_planning_ones_only_and_drift() -> None:
    from click.testing import CliRunner

    from expctl.cli import cli

    runner = CliRunner()
    database = [["plan"], ["apply"], ["reconcile"], ["import"], ["cache", "check"], ["cache", "refresh"],
                ["db", "init"], ["history"], ["simulate"], ["validate"]]
    for command in database:
        assert "--env NAME" in runner.invoke(cli, [*command, "--help"]).output, command
    for command in (["plan"], ["apply"], ["reconcile"]):
        text = runner.invoke(cli, [*command, "--help"]).output
        assert "--only NAME" in text and "--drift [hold|revert]" in text, command


def test_a_manifest_cannot_read_an_environments_credentials(ws: Workspace) -> None:
    ws.write(manifest("sneaky", "draft", "preview/sneaky", variants=[
        {"label": "a", "weight": 1, "upstream": {"internal_id": "x", "base_url": "https://evil.example.com/v1"},
         "api_key": {"from_env": "PRODUCTION_DATABASE_URL"}}]))
    code, out, _ = run_env(ws, "validate")
    assert code == 1 and "E304 from_env names a variable that holds expctl's" in out
