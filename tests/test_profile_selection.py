"""Choosing the gateway profile: `--gateway-profile` over `EXPCTL_GATEWAY_PROFILE` over
`gateway_profile` in expctl.toml over the default, an unknown name as a clear error, and the same
manifests planned and applied under both profiles on a real PostgreSQL and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import expctl.cli
from expctl.cli.options import connection_options, open_settings
from expctl.core.profiles import DEFAULT_PROFILE

from .workspace import Workspace, manifest

expctl.cli._register()

NOWHERE = "postgresql://127.0.0.1:9/none"  # never connected to: the profile is chosen before that


@click.command()
@connection_options
def _probe(**conn: Any) -> None:
    """Prints the profile a database command would run under."""
    with open_settings(None, **conn) as settings:
        click.echo(settings.gateway_profile.name)


def _chosen(flag: str | None, env: str | None, toml: str | None, repo: Path) -> str:
    if toml is not None:
        (repo / "expctl.toml").write_text(f'gateway_profile = "{toml}"\n')
    args = ["--database-url", NOWHERE] + (["--gateway-profile", flag] if flag else [])
    result = CliRunner().invoke(_probe, args, env={"EXPCTL_GATEWAY_PROFILE": env}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.mark.parametrize(("flag", "env", "toml", "chosen"), [
    (None, None, None, DEFAULT_PROFILE),
    (None, None, "2026-05", "2026-05"),
    (None, "2026-05", None, "2026-05"),
    (None, "2026-11", "2026-05", "2026-11"),
    (None, "", "2026-05", "2026-05"),  # an empty variable counts as unset
    ("2026-05", None, None, "2026-05"),
    ("2026-05", "2026-11", "2026-11", "2026-05"),
    ("2026-11", "2026-05", "2026-05", "2026-11"),
])
def test_flag_over_environment_over_config_over_default(repo: Path, flag: str | None, env: str | None,
                                                        toml: str | None, chosen: str) -> None:
    assert _chosen(flag, env, toml, repo) == chosen


def test_default_is_2026_11() -> None:
    assert DEFAULT_PROFILE == "2026-11"


DATABASE_COMMANDS = [["plan"], ["apply"], ["reconcile"], ["cache", "check"], ["cache", "refresh"], ["import"],
                     ["simulate", "preview/x"], ["db", "init"], ["history"]]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_every_database_command_takes_the_flag(repo: Path, capsys: pytest.CaptureFixture[str],
                                               command: list[str]) -> None:
    assert expctl.cli.run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--gateway-profile" in out and "EXPCTL_GATEWAY_PROFILE" in out


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = expctl.cli.run(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("command", [["plan"], ["reconcile", "--auto-approve"], ["cache", "check"], ["db", "init"]],
                         ids=" ".join)
def test_an_unknown_profile_is_an_error_before_connecting(repo: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          command: list[str]) -> None:
    code, text = _run(capsys, *command, "--database-url", NOWHERE, "--gateway-profile", "2027-01")
    assert code == 1 and "--gateway-profile" in text and "2026-05" in text and "2026-11" in text, text
    monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "latest")
    code, text = _run(capsys, *command, "--database-url", NOWHERE)
    assert code == 1 and "'latest'" in text and "2026-11" in text, text
    monkeypatch.delenv("EXPCTL_GATEWAY_PROFILE")
    (repo / "expctl.toml").write_text('gateway_profile = "2026-13"\n')
    code, text = _run(capsys, *command, "--database-url", NOWHERE)
    assert code == 1 and "expctl.toml:1:1: E503 unknown gateway profile '2026-13'" in text, text
    assert "connect" not in text.lower()


# --- end to end, on the ws fixture -----------------------------------------------------------------


def _plain() -> list[dict[str, Any]]:
    """Manifests either gateway reads: no metadata, upstreams with only fields both profiles know."""
    return [manifest("plain-active", "active", public_id="preview/plain"),
            manifest("plain-draft", "draft", public_id="preview/plain-draft")]


@pytest.mark.parametrize(("first", "second"), [("2026-11", "2026-05"), ("2026-05", "2026-11")])
def test_same_manifests_plan_and_apply_under_both_profiles(ws: Workspace, first: str, second: str) -> None:
    ws.write(*_plain())
    planned = ws.expctl("plan", "--gateway-profile", first)
    assert planned.code == 0, planned.err
    assert "plain-active" in planned.out
    done = ws.reconcile("--gateway-profile", first)
    assert done.code == 0, done.err
    assert ws.membership() == ["preview/plain"]
    rows = ws.dump()
    # Written under one profile, read back under either: nothing to change, Redis in step.
    for profile in (first, second):
        again = ws.expctl("plan", "--detailed-exitcode", "--gateway-profile", profile)
        assert again.code == 0, (profile, again.out, again.err)
        assert ws.expctl("cache", "check", "--gateway-profile", profile).code == 0
    assert ws.reconcile("--gateway-profile", second).code == 0
    assert ws.dump() == rows and ws.membership() == ["preview/plain"]


def test_2026_05_refuses_a_manifest_with_metadata(ws: Workspace) -> None:
    ws.write(manifest("with-metadata", "active", public_id="preview/meta",
                      metadata={"context_length": 131072, "max_completion_tokens": 16384}))
    before = ws.dump()
    for command in (["plan"], ["reconcile", "--auto-approve"]):
        result = ws.expctl(*command, "--gateway-profile", "2026-05")
        assert result.code == 1, (command, result.out, result.err)
        assert "metadata" in result.out + result.err
    assert ws.dump() == before and ws.membership() is None


def test_2026_11_applies_the_same_manifest_with_metadata(ws: Workspace) -> None:
    metadata = {"context_length": 131072, "max_completion_tokens": 16384}
    ws.write(manifest("with-metadata", "active", public_id="preview/meta", metadata=metadata))
    done = ws.reconcile("--gateway-profile", "2026-11")
    assert done.code == 0, done.err
    assert ws.experiment("with-metadata")["metadata"] == metadata
    assert ws.membership() == ["preview/meta"]
