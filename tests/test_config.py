"""The project configuration `expctl.toml`: loading, located problems (all at once), host pins, the
TOML position scanner, its wiring into the commands, and CI detection."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

import expctl.cli
from expctl.adapters.config import ProjectConfig, ProjectConfigError, load_project_config
from expctl.adapters.tomlpos import key_positions
from expctl.cli.options import in_ci
from expctl.core.errors import Problem
from expctl.core.keyreview import host_matches

from .manifest.helpers import BASE as BASE_ANY
from .manifest.helpers import edit, unmark, write

expctl.cli._register()

# The shared manifest, valid under the default gateway profile (2026-11): no client settings in the
# upstreams, where that gateway no longer reads them.
BASE = "".join(line for line in BASE_ANY.splitlines(keepends=True)
               if not line.lstrip().startswith(("opencode_settings:", "openclaw_settings:")))

GOOD = """\
# Extra roots for from_file, and where each secret may be sent.
[secrets]
file_roots = ["/etc/expctl/secrets", "secrets"]

[secrets.host_pins]
"env:PARTNER_RC1_KEY" = ["partner.example.com"]
"file:/run/secrets/partner-rc2" = ["*.partner.example.com", "API.Other.example"]
"""


def load(repo: Path, text: str | None, env: dict[str, str] | None = None) -> ProjectConfig:
    if text is not None:
        (repo / "expctl.toml").write_text(text)
    return load_project_config(repo, env or {"HOME": "/home/u"})


def problems(repo: Path, text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ProjectConfigError) as info:
        load(repo, text, env)
    return info.value.problems


def at(text: str) -> tuple[str, tuple[int, int]]:
    source, where = unmark(text)
    return source, where


# --- loading ---------------------------------------------------------------------------------------


def test_no_file_is_the_default(tmp_path: Path) -> None:
    config = load(tmp_path, None)
    assert config == ProjectConfig() and config.path is None and config.file_roots == ()
    assert config.host_pins == {}


def test_a_valid_file(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)
    assert config.path == tmp_path / "expctl.toml"
    assert config.file_roots == (Path("/etc/expctl/secrets"), tmp_path / "secrets")
    policy = config.secret_policy(tmp_path, {})
    assert policy.file_roots == (Path("/run/secrets"), Path("/var/run/secrets"), Path("/etc/expctl/secrets"),
                                 tmp_path / "secrets")
    assert policy.reference_problem("/etc/expctl/secrets/partner") is None


def test_empty_file_and_empty_section(tmp_path: Path) -> None:
    assert load(tmp_path, "") == ProjectConfig(path=tmp_path / "expctl.toml")
    assert load(tmp_path, "[secrets]\n").file_roots == ()


@pytest.mark.parametrize(("ref", "host", "allowed"), [
    ("env:PARTNER_RC1_KEY", "partner.example.com", True),
    ("env:PARTNER_RC1_KEY", "PARTNER.example.com.", True),
    ("env:PARTNER_RC1_KEY", "evil.example.com", False),
    ("env:PARTNER_RC1_KEY", "partner.example.com.evil.io", False),
    ("file:/run/secrets/partner-rc2", "eu.partner.example.com", True),
    ("file:/run/secrets/partner-rc2", "a.b.partner.example.com", True),
    ("file:/run/secrets/partner-rc2", "partner.example.com", False),  # *.domain: subdomains only
    ("file:/run/secrets/partner-rc2", "xpartner.example.com", False),
    ("file:/run/secrets/partner-rc2", "api.other.example", True),
    ("env:UNPINNED", "anything.example", None),
])
def test_host_pins_as_the_planner_matches_them(tmp_path: Path, ref: str, host: str, allowed: bool | None) -> None:
    patterns = load(tmp_path, GOOD).host_pins.get(ref)
    assert (None if patterns is None else any(host_matches(p, host) for p in patterns)) is allowed


# --- located problems, all at once ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [
    ("[secrets]\n«colour = 'red'\n", "E502"),
    ("[«environment]\nname = 'x'\n", "E502"),
    ("[secrets]\n«file_roots = '/etc/x'\n", "E503"),
    ("[secrets]\nfile_roots = ['/etc/x', «3]\n", "E503"),
    ("[secrets]\nfile_roots = [\n  '/etc/x',\n  «'/proc/self',\n]\n", "E504"),
    ("[secrets]\nfile_roots = [«'/']\n", "E504"),
    ("[secrets]\nfile_roots = [«'.']\n", "E504"),
    ("[secrets]\nfile_roots = [«'.expctl']\n", "E504"),
    ("[secrets]\nfile_roots = [«'../elsewhere']\n", "E504"),
    ("[secrets]\nfile_roots = [«'']\n", "E504"),
    ("[secrets]\nfile_roots = [«'/home/u']\n", "E504"),
    ("[secrets.host_pins]\n«'PARTNER' = ['a.example.com']\n", "E505"),
    ("[secrets.host_pins]\n'env:A' = ['a.example.com', «'https://a.example.com']\n", "E505"),
    ("[secrets.host_pins]\n«'env:A' = []\n", "E505"),
    ("[secrets.host_pins]\n«'env:A' = 'a.example.com'\n", "E503"),
    ("secrets.host_pins = { 'env:A' = [«'*.com'] }\n", "E505"),
    ("[secrets]\nfile_roots = [«\n", "E501"),
    ("[secrets]\nfile_roots = «nope\n", "E501"),
    ("«gateway_profile = '2027-01'\n", "E503"),
    ("«gateway_profile = 2026\n", "E503"),
    ("[secrets]\n«gateway_profile = '2026-05'\n", "E502"),
])
def test_each_problem_is_located(tmp_path: Path, text: str, code: str) -> None:
    source, where = at(text)
    found = problems(tmp_path, source)
    assert [(p.code, p.location.path, p.location.line, p.location.col) for p in found] == [
        (code, "expctl.toml", *where)], found
    assert found[0].hint


def test_gateway_profile_is_a_top_level_key(tmp_path: Path) -> None:
    assert load(tmp_path, None).gateway_profile is None
    assert load(tmp_path, "").gateway_profile is None
    assert load(tmp_path, 'gateway_profile = "2026-05"\n' + GOOD).gateway_profile == "2026-05"
    found = problems(tmp_path, 'gateway_profile = "2026-5"\n')
    assert "unknown gateway profile '2026-5'" in found[0].message
    assert found[0].hint == 'write one of "2026-05", "2026-11"'


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
[secrets]
file_roots = ["/proc", 7, "ok"]
colour = "red"

[secrets.host_pins]
"nope" = ["a.example.com"]
"env:B" = "b.example.com"

[deploy]
"""
    found = problems(tmp_path, text)
    assert [(p.code, p.location.line) for p in found] == [
        ("E504", 2), ("E503", 2), ("E502", 3), ("E505", 6), ("E503", 7), ("E502", 9)]
    message = str(ProjectConfigError(found))
    assert message.startswith("6 problem(s) in the project configuration:\nexpctl.toml:2:")


def test_roots_are_checked_by_their_real_path_too(tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/proc/self")
    found = problems(tmp_path, "[secrets]\nfile_roots = ['innocent']\n")
    assert [p.code for p in found] == ["E504"] and "/proc" in found[0].message


def test_explicit_path_must_exist_and_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectConfigError) as info:
        load_project_config(tmp_path, {}, Path("conf/missing.toml"))
    assert [(p.code, str(p.location)) for p in info.value.problems] == [("E500", "conf/missing.toml:1:1")]
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ProjectConfigError, match="E500"):
        load_project_config(tmp_path, {}, tmp_path / "dir.toml")
    (tmp_path / "other.toml").write_text("[secrets]\nfile_roots = ['/etc/other']\n")
    assert load_project_config(tmp_path, {}, Path("other.toml")).file_roots == (Path("/etc/other"),)


def test_non_utf8_is_located_and_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "expctl.toml").write_bytes(b"[secrets]\n# caf\xe9 SECRET-CANARY\n")
    with pytest.raises(ProjectConfigError) as info:
        load(tmp_path, None)
    assert str(info.value.problems[0].location) == "expctl.toml:2:1" and "CANARY" not in str(info.value)


# --- the TOML position scanner -------------------------------------------------------------------------


SCANNED = '''\
title = "a [bracket] and a # hash"  # comment [x]
multi = """
  line "quoted" ]
"""
literal = \'\'\'c:\\path\'\'\'
[secrets]   # trailing
"quoted.key" = 1
dotted.inner = 2023-01-01 10:00:00
arr = [ 1, [2, 3],
  { k = "v" }, ]
[[items]]
name = "first"
[[items]]
name = "second"
'''


def test_positions_of_keys_elements_and_tables() -> None:
    tomllib.loads(SCANNED)  # the scanner only ever sees valid TOML
    found = key_positions(SCANNED)
    assert found[("title",)] == (1, 1)
    assert found[("multi",)] == (2, 1)
    assert found[("literal",)] == (5, 1)
    assert found[("secrets",)] == (6, 2)
    assert found[("secrets", "quoted.key")] == (7, 1)
    assert found[("secrets", "dotted")] == (8, 1) and found[("secrets", "dotted", "inner")] == (8, 8)
    assert found[("secrets", "arr", 1)] == (9, 12) and found[("secrets", "arr", 1, 1)] == (9, 16)
    assert found[("secrets", "arr", 2, "k")] == (10, 5)
    assert found[("items", 0, "name")] == (12, 1) and found[("items", 1, "name")] == (14, 1)


def test_scanner_never_fails_on_odd_text() -> None:
    for text in ["= 1", "[unclosed", "a = [", 'a = "', "a.b = {c = [1, {d = 2}]}"]:
        assert isinstance(key_positions(text), dict)


# --- the commands ------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = expctl.cli.run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_uses_the_configured_roots(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, where = unmark(edit(BASE, "{from_env: PARTNER_RC1_KEY}", "«{from_file: /etc/expctl/secrets/partner}"))
    write(repo / "experiments.d", {"m.yaml": source})
    code, out, _ = run(capsys, "validate")
    assert code == 1 and f"experiments.d/m.yaml:{where[0]}:{where[1]}: E306 " in out
    (repo / "expctl.toml").write_text(GOOD)
    assert run(capsys, "validate")[0] == 0
    (repo / "other.toml").write_text("")
    assert run(capsys, "validate", "--config", "other.toml")[0] == 1


def test_validate_reports_config_problems_in_its_formats(repo: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write(repo / "experiments.d", {"m.yaml": BASE})
    (repo / "custom.toml").write_text("[secrets]\nfile_roots = ['/proc']\ncolour = 1\n")
    monkeypatch.setenv("EXPCTL_CONFIG", "custom.toml")
    code, out, _ = run(capsys, "validate")
    assert code == 1
    assert "custom.toml:2:15: E504 file root /proc is inside /proc" in out and "custom.toml:3:1: E502 " in out
    code, out, _ = run(capsys, "validate", "--format", "github")
    assert code == 1 and "::error file=custom.toml,line=3,col=1,title=E502::" in out


def test_database_commands_fail_early_on_a_bad_config(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before any connection: the URL below leads nowhere, and the error is the configuration's."""
    write(repo / "experiments.d", {"m.yaml": BASE})
    (repo / "expctl.toml").write_text("[secrets]\nfile_roots = 'x'\n")
    for command in (["plan"], ["reconcile", "--auto-approve"], ["cache", "check"]):
        code, out, err = run(capsys, *command, "--database-url", "postgresql://127.0.0.1:9/none")
        assert code == 1, (command, out, err)
        assert "expctl.toml:2:1: E503 secrets.file_roots: Input should be a valid list" in err, err
        assert "connect" not in err.lower()


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on", "gitlab"])
def test_ci_without_database_url_is_an_error(repo: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    write(repo / "experiments.d", {"m.yaml": BASE})
    code, _, err = run(capsys, "plan")
    assert code == 1 and "DATABASE_URL is not set" in err and "--local" in err
    assert not (repo / ".expctl").exists()  # no embedded instance was started


@pytest.mark.parametrize(("value", "ci"), [("", False), ("0", False), ("false", False), ("False", False),
                                           ("no", False), (" NO ", False), ("1", True), ("true", True),
                                           ("yes", True), ("woodpecker", True)])
def test_ci_detection(value: str, ci: bool) -> None:
    assert in_ci({"CI": value}) is ci
    assert in_ci({}) is False
    assert in_ci(dict(os.environ, CI=value)) is ci
