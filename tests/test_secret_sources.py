"""The secret-source policy end to end on a real PostgreSQL and Redis (issue 13): a reference to
expctl's own environment, a kernel file, the BYOK key or a file outside the allowed folders is
refused with a located error, plan and reconcile exit 1, nothing is written and no output carries
the environment; a file below a root configured in `expctl.toml` works."""

from __future__ import annotations

import os

import pytest

from expctl.cli import run
from tests.manifest.helpers import unmark
from tests.test_apply import current_keys
from tests.workspace import BYOK_B64, Result, Workspace

MANIFEST = """\
apiVersion: expctl/v1
kind: ModelExperiment
name: exp
public_model_id: preview/x
display_name: Exp
status: active
variants:
  - label: control
    weight: 1
    upstream: {internal_id: up-a, base_url: 'https://a.example.com/v1'}
    api_key: «{REFERENCE}
  - label: treatment
    weight: 1
    upstream: {internal_id: up-b, base_url: 'https://b.example.com/v1'}
    api_key: {from_env: KEY_B}
"""


def write(ws: Workspace, reference: str) -> tuple[int, int]:
    """The manifest with `reference` as the control's api_key; returns the api_key's line and col."""
    text, where = unmark(MANIFEST.replace("{REFERENCE}", reference))
    (ws.dir / "exp.yaml").write_text(text)
    return where


def validate(ws: Workspace) -> Result:
    ws.capsys.readouterr()
    code = run(["validate"])
    captured = ws.capsys.readouterr()
    return Result(code, captured.out, captured.err)


def snapshot(ws: Workspace) -> tuple[object, object]:
    return ws.dump(), ws.redis_dump()


def assert_no_environment_in(output: str) -> None:
    """Values of expctl's own environment: in /proc/self/environ, never in an output."""
    for value in (os.environ["PATH"], BYOK_B64, "secret-a", "secret-b"):
        assert value not in output


@pytest.fixture
def applied(ws: Workspace) -> Workspace:
    """The experiment applied once with ordinary keys, so a run that wrote would show (a rotation)."""
    write(ws, "{from_env: KEY_A}")
    assert ws.reconcile().code == 0
    assert current_keys(ws, "exp") == {"control": "secret-a", "treatment": "secret-b"}
    return ws


@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/self/cmdline", "/dev/stdin",
                                  "/sys/kernel/uevent_seqnum", ".expctl/byok.key", "/etc/passwd"])
def test_from_file_outside_the_allowed_places_is_refused_everywhere(applied: Workspace, path: str) -> None:
    ws = applied
    line, col = write(ws, f"{{from_file: '{path}'}}")
    before = snapshot(ws)
    checked = validate(ws)
    assert checked.code == 1 and f"experiments.d/exp.yaml:{line}:{col}: E306 " in checked.out, checked.out
    for result in (ws.expctl("plan"), ws.reconcile()):
        assert result.code == 1, (result.out, result.err)
        assert f"exp.yaml:{line}:{col}: E306 " in result.err, result.err
        assert_no_environment_in(result.out + result.err)
    assert snapshot(ws) == before


def test_symlink_in_the_repository_to_the_environment_is_refused_at_read_time(applied: Workspace) -> None:
    """The manifest check is lexical (`secrets/innocent` is a fine name); the resolver follows the
    link, sees /proc, and stops before reading."""
    ws = applied
    (ws.root / "secrets").mkdir()
    (ws.root / "secrets" / "innocent").symlink_to("/proc/self/environ")
    write(ws, "{from_file: secrets/innocent}")
    before = snapshot(ws)
    for result in (ws.expctl("plan"), ws.reconcile(), ws.expctl("reconcile", "--dry-run")):
        assert result.code == 1, (result.out, result.err)
        assert "secret file:secrets/innocent" in result.err and "/proc" in result.err, result.err
        assert "Traceback" not in result.err
        assert_no_environment_in(result.out + result.err)
    assert snapshot(ws) == before


def test_symlink_in_the_repository_to_the_byok_key_is_refused(applied: Workspace) -> None:
    ws = applied
    (ws.root / ".expctl").mkdir()
    (ws.root / ".expctl" / "byok.key").write_text(BYOK_B64 + "\n")
    (ws.root / "secrets").mkdir()
    (ws.root / "secrets" / "k").symlink_to("../.expctl/byok.key")
    write(ws, "{from_file: secrets/k}")
    before = snapshot(ws)
    result = ws.reconcile()
    assert result.code == 1 and "secret file:secrets/k" in result.err and ".expctl/" in result.err, result.err
    assert_no_environment_in(result.out + result.err)
    assert snapshot(ws) == before


def test_a_file_below_a_configured_root_works_end_to_end(applied: Workspace,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    ws = applied
    mounted = tmp_path_factory.mktemp("mounted")
    (mounted / "partner").write_text("key-from-the-mount\n")
    write(ws, f"{{from_file: '{mounted / 'partner'}'}}")
    before = snapshot(ws)
    assert "E306" in validate(ws).out and ws.reconcile().code == 1  # not yet an allowed root
    assert snapshot(ws) == before

    (ws.root / "expctl.toml").write_text(f"[secrets]\nfile_roots = ['{mounted}']\n")
    assert validate(ws).code == 0
    result = ws.reconcile()
    assert result.code == 0, (result.out, result.err)
    assert current_keys(ws, "exp")["control"] == "key-from-the-mount"
    assert ws.expctl("plan", "--detailed-exitcode").code == 0


def test_a_reserved_variable_is_refused_even_when_set(applied: Workspace) -> None:
    ws = applied
    ws.monkeypatch.setenv("GH_TOKEN", "ghs_CANARYtoken0123456789")
    line, col = write(ws, "{from_env: GH_TOKEN}")
    before = snapshot(ws)
    assert f"exp.yaml:{line}:{col}: E304 " in validate(ws).out
    result = ws.reconcile()
    assert result.code == 1 and "E304" in result.err and "CANARY" not in result.out + result.err
    assert snapshot(ws) == before
