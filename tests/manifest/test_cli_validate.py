"""`expctl validate` and `expctl schema` through the real CLI entry point: exit codes and output shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import expctl.cli
from expctl.core.manifest.model import manifest_json_schema
from expctl.core.render.problems import github_annotation

from .helpers import BASE, BASE_2026_05, edit, write

expctl.cli._register()

GOOD: dict[str, str | bytes] = {
    "a.yaml": BASE,
    "b.yaml": edit(BASE, "name: exp-a", "name: exp-b") + "---\n" + edit(BASE, "name: exp-a", "name: exp-c"),
}
BAD: dict[str, str | bytes] = {
    "a.yaml": edit(BASE, "status: draft", "status: running"),
    "b.yaml": edit(BASE, "name: exp-a", "name: exp-b") + "colour: red\n",
}
COLOUR_LINE = BASE.count("\n") + 1  # b.yaml's unknown field, on the line after BASE
TEXT_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>E\d{3}) (?P<message>.+)$")
GITHUB_LINE = re.compile(
    r"^::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+),title=(?P<title>E\d{3})::(?P<message>.+)$")


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = expctl.cli.run(["validate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_clean_directory_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = validate(capsys, str(write(tmp_path / "d", GOOD)))
    assert code == 0
    assert out == "OK: 3 experiment(s) in 2 file(s), no problems\n"


def test_problems_exit_1_in_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "d", BAD)
    code, out, _ = validate(capsys, str(directory))
    assert code == 1
    lines = out.splitlines()
    assert lines[-1] == "2 problem(s) in 2 file(s)"
    problems = [m.groupdict() for m in map(TEXT_LINE.match, lines) if m]
    assert [(p["path"], p["line"], p["col"], p["code"]) for p in problems] == [
        (str(directory / "a.yaml"), "8", "9", "E203"),
        (str(directory / "b.yaml"), str(COLOUR_LINE), "1", "E201"),
    ]
    hints = [line for line in lines if line.startswith("    hint: ")]
    assert len(hints) == 2


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "d", BAD)
    code, out, _ = validate(capsys, str(directory), "--format", "json")
    assert code == 1
    record = json.loads(out)
    assert record["ok"] is False
    assert (record["files"], record["experiments"]) == (2, 0)
    assert [set(p) for p in record["problems"]] == [{"code", "path", "line", "col", "message", "hint"}] * 2
    assert [(p["code"], p["line"], p["col"]) for p in record["problems"]] == [("E203", 8, 9), ("E201", COLOUR_LINE, 1)]
    assert record["problems"][0]["path"] == str(directory / "a.yaml")


def test_json_format_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = validate(capsys, str(write(tmp_path / "d", GOOD)), "--format", "json")
    assert code == 0
    assert json.loads(out) == {"ok": True, "files": 2, "experiments": 3, "problems": []}


def test_github_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "d", BAD)
    code, out, _ = validate(capsys, str(directory), "--format", "github")
    assert code == 1
    *annotations, summary = out.splitlines()
    assert summary == "2 problem(s) in 2 file(s)"
    parsed = [GITHUB_LINE.match(line) for line in annotations]
    assert all(parsed), annotations
    assert [(m["file"], m["line"], m["col"], m["title"]) for m in parsed if m] == [
        (str(directory / "a.yaml"), "8", "9", "E203"),
        (str(directory / "b.yaml"), str(COLOUR_LINE), "1", "E201"),
    ]
    assert " — " in annotations[0]  # message — hint


def test_github_format_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = validate(capsys, str(write(tmp_path / "d", GOOD)), "--format", "github")
    assert (code, out) == (0, "OK: 3 experiment(s) in 2 file(s), no problems\n")


def test_github_annotation_escapes_properties_and_data() -> None:
    line = github_annotation("error", "dir,x/a:b.yaml", 3, 4, "E1:0,1", "50% done\nnext\rline")
    assert line == "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=4,title=E1%3A0%2C1::50%25 done%0Anext%0Dline"


def test_default_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "experiments.d", GOOD)
    monkeypatch.chdir(tmp_path)
    code, out, _ = validate(capsys)
    assert (code, out) == (0, "OK: 3 experiment(s) in 2 file(s), no problems\n")
    write(tmp_path / "experiments.d", {"c.yaml": "name: [\n"})
    code, out, _ = validate(capsys, "--format", "json")
    assert code == 1
    assert json.loads(out)["problems"][0]["path"] == "experiments.d/c.yaml"


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = validate(capsys)
    assert code == 1
    assert out.splitlines()[0].startswith("experiments.d:1:1: E100 manifest directory not found")
    code, out, _ = validate(capsys, str(tmp_path / "nope"), "--format", "json")
    assert code == 1
    assert [p["code"] for p in json.loads(out)["problems"]] == ["E100"]


def test_empty_directory_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    code, out, _ = validate(capsys, str(tmp_path / "d"))
    assert (code, out) == (0, "OK: 0 experiment(s) in 0 file(s), no problems\n")


def test_unknown_format_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = validate(capsys, str(tmp_path), "--format", "xml")
    assert code == 1  # click usage errors exit 1 through run()
    assert "xml" in err


def test_help_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert expctl.cli.run(["validate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "expctl validate experiments.d --format json" in out


def test_schema_command_prints_the_model_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert expctl.cli.run(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == manifest_json_schema()


# --- gateway profiles -------------------------------------------------------------------------------------

@pytest.fixture
def no_profile_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No profile from the environment or an expctl.toml in the working directory."""
    monkeypatch.delenv("EXPCTL_GATEWAY_PROFILE", raising=False)
    monkeypatch.delenv("EXPCTL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_profile_env")
@pytest.mark.parametrize("profile", ["2026-05", "2026-11"])
def test_schema_command_prints_the_profiles_schema(capsys: pytest.CaptureFixture[str], profile: str) -> None:
    assert expctl.cli.run(["schema", "--gateway-profile", profile]) == 0
    assert json.loads(capsys.readouterr().out) == manifest_json_schema(profile)


@pytest.mark.usefixtures("no_profile_env")
def test_schema_command_reads_the_profile_from_the_environment(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")
    assert expctl.cli.run(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == manifest_json_schema("2026-05")


@pytest.mark.usefixtures("no_profile_env")
def test_validate_follows_the_gateway_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    old = str(write(tmp_path / "old", {"a.yaml": BASE_2026_05}))
    new = str(write(tmp_path / "new", {"a.yaml": BASE}))
    assert validate(capsys, old, "--gateway-profile", "2026-05")[0] == 0
    code, out, _ = validate(capsys, new, "--gateway-profile", "2026-05")
    assert code == 1 and " E213 " in out
    code, out, _ = validate(capsys, old)  # the default, 2026-11: the upstream's client settings moved
    assert code == 1 and "metadata.opencode_settings" in out
    assert validate(capsys, new)[0] == 0
    monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")
    assert validate(capsys, old)[0] == 0
    assert validate(capsys, old, "--gateway-profile", "2026-11")[0] == 1  # the flag wins


@pytest.mark.usefixtures("no_profile_env")
def test_unknown_gateway_profile_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = validate(capsys, str(write(tmp_path / "d", GOOD)), "--gateway-profile", "2027-01")
    assert code != 0 and "--gateway-profile" in err
