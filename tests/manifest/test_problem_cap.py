"""A file with more problems than a report lists: the first 100 (in sorted order) are exactly those
of an uncapped run, one E199 line counts the rest, every output format shows it, and validation
stays linear in the number of problems (hang guards on a 16,000-key file and the densest 0.9 MB one).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bench import hostile
from pydantic import ValidationError

import expctl.cli
from expctl.adapters.manifest import load
from expctl.adapters.manifest.load import MAX_FILE_BYTES, load_directory
from expctl.adapters.manifest.pydantic_problems import problems_from_validation
from expctl.adapters.manifest.yamlread import Document, parse_documents
from expctl.core.errors import Location, Problem
from expctl.core.manifest.model import Manifest
from expctl.core.manifest.problem_cap import (
    MAX_PROBLEMS_PER_FILE,
    MoreProblems,
    cap_per_file,
    more_problems,
    problem_count,
)
from expctl.core.render.problems import PROBLEM_RENDERERS

from .helpers import write

expctl.cli._register()

REPO = Path(__file__).resolve().parents[2]
TEXT_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>E\d{3}) (?P<message>.+)$")


def problem(path: str, line: int, col: int = 1, code: str = "E201") -> Problem:
    return Problem(code, Location(path, line, col), f"problem at {line}", "hint")


def test_each_file_keeps_its_first_problems_then_one_line_counting_the_rest() -> None:
    problems = ([problem("a.yaml", n) for n in range(1, 151)] + [problem("b.yaml", n) for n in range(1, 101)]
                + [problem("c.yaml", n) for n in range(1, 102)])
    random.Random(1).shuffle(problems)
    shown = cap_per_file(problems)
    by_file = {name: [p for p in shown if p.location.path == name] for name in ("a.yaml", "b.yaml", "c.yaml")}
    assert [p.location.line for p in by_file["a.yaml"][:-1]] == list(range(1, 101))
    assert by_file["a.yaml"][-1] == Problem("E199", Location("a.yaml", 101, 1), "… and 50 more problems in this file",
                                            by_file["a.yaml"][-1].hint)
    assert [p.code for p in by_file["b.yaml"]] == ["E201"] * 100  # exactly the limit: nothing to add
    assert by_file["c.yaml"][-1].message == "… and 1 more problem in this file"
    assert [p.location.path for p in shown] == sorted(p.location.path for p in shown)  # files stay in order


def test_a_stand_in_for_uncounted_problems_is_folded_into_the_line() -> None:
    listed = [problem("a.yaml", n) for n in range(1, 104)]
    stand_in = more_problems(Location("a.yaml", 101, 5), 500)
    shown = cap_per_file([*listed, stand_in])
    assert shown[:100] == listed[:100]
    assert shown[100].code == "E199" and len(shown) == 101
    assert shown[100].location == Location("a.yaml", 101, 1)  # the first problem left out
    assert shown[100].message == "… and 503 more problems in this file"
    assert problem_count([*listed, stand_in]) == 603


def _validated(text: str) -> tuple[ValidationError, Document]:
    (doc,), _ = parse_documents("m.yaml", text)
    try:
        Manifest.model_validate(doc.data, strict=True)
    except ValidationError as err:
        return err, doc
    raise AssertionError("expected validation errors")


SHAPES: dict[str, Callable[[], str]] = {
    "unknown keys, top level": lambda: hostile.unknown_top(600),
    "unknown keys in an upstream": lambda: hostile.unknown_upstream(600),
    "unknown keys in a variant": lambda: hostile.unknown_variant(600),
    "variants with problems": lambda: hostile.bad_variants(600),
    "empty variants (ties: four problems per place)": lambda: hostile.densest(2_000),
    "mixed": lambda: hostile.bad_variants(300).replace("variants:\n", "bogus: 1\nvariants:\n")
    + "".join(f"extra_{i}: 1\n" for i in range(200)),
}


@pytest.mark.parametrize("limit", [1, 7, 100])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_itemized_problems_are_the_first_of_the_uncapped_ones(shape: str, limit: int) -> None:
    err, doc = _validated(SHAPES[shape]())
    full = sorted(problems_from_validation(err, doc, limit=None), key=Problem.sort_key)
    capped = problems_from_validation(err, doc, limit=limit)
    itemized = sorted((p for p in capped if not isinstance(p, MoreProblems)), key=Problem.sort_key)
    stand_ins = [p for p in capped if isinstance(p, MoreProblems)]
    assert len(full) > limit * 3
    assert len(itemized) >= limit
    assert itemized == full[: len(itemized)]  # a prefix of the sorted problems: the first `limit` are exact
    assert problem_count(capped) == len(full)
    assert [p.location for p in stand_ins] == [full[len(itemized)].location]
    assert cap_per_file(capped, limit) == cap_per_file(full, limit)


def test_a_whole_directory_reports_what_an_uncapped_loader_would(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    directory = write(tmp_path / "d", {
        "a.yaml": SHAPES["mixed"](), "b.yaml": hostile.densest(4_000), "c.yaml": hostile.unknown_variant(50),
        "d.yaml": hostile.key_like_strings(150), "e.yaml": hostile.duplicate_keys(120),
    })
    capped = load_directory(directory)
    monkeypatch.setattr(load, "problems_from_validation",
                        lambda err, doc, **options: problems_from_validation(err, doc, **{**options, "limit": None}))
    uncapped = load_directory(directory)
    assert not any(isinstance(p, MoreProblems) for p in uncapped.problems)
    assert any(isinstance(p, MoreProblems) for p in capped.problems)
    for fmt, render in PROBLEM_RENDERERS.items():
        assert render(capped.problems, 5, 0) == render(uncapped.problems, 5, 0), fmt


def _validate(capsys: pytest.CaptureFixture[str], directory: Path, fmt: str) -> str:
    assert expctl.cli.run(["validate", str(directory), "--format", fmt]) == 1
    return capsys.readouterr().out


def test_every_format_shows_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "d", {"m.yaml": hostile.unknown_top(300),
                                       "n.yaml": hostile.unknown_top(3).replace("name: hostile", "name: other")})
    more = "… and 200 more problems in this file"

    text = _validate(capsys, directory, "text").splitlines()
    located = [m for m in map(TEXT_LINE.match, text) if m]
    assert len(located) == MAX_PROBLEMS_PER_FILE + 1 + 3
    assert (located[-4].group("code"), located[-4].group("message")) == ("E199", more)
    assert located[-4].group("line") == str(5 + MAX_PROBLEMS_PER_FILE + 1)  # where the first left out is
    assert text[-1] == "303 problem(s) in 2 file(s)"

    record = json.loads(_validate(capsys, directory, "json"))
    assert len(record["problems"]) == MAX_PROBLEMS_PER_FILE + 1 + 3
    assert (record["problems"][100]["code"], record["problems"][100]["message"]) == ("E199", more)

    annotations = [line for line in _validate(capsys, directory, "github").splitlines() if line.startswith("::")]
    assert len(annotations) == MAX_PROBLEMS_PER_FILE + 1 + 3
    assert "title=E199::" + more in annotations[100]


def test_the_readme_lists_the_code() -> None:
    assert re.search(r"^\| E199 \| .*100 problems", (REPO / "README.md").read_text(), re.MULTILINE)


def _validate_in_a_process(directory: Path) -> str:
    """`expctl validate` as CI runs it; a run that hangs is stopped and fails the test."""
    run = subprocess.run([sys.executable, "-m", "expctl", "validate", str(directory)], cwd=directory,
                         capture_output=True, text=True, timeout=20, check=False)
    assert run.returncode == 1, run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize(("name", "make"), [
    ("16,000 unknown keys", lambda: hostile.unknown_top(16_000)),
    ("16,000 unknown keys in a variant", lambda: hostile.unknown_variant(16_000)),
    ("densest 0.9 MB", hostile.densest),
])
def test_a_file_full_of_problems_validates_in_bounded_time(tmp_path: Path, name: str,
                                                           make: Callable[[], str]) -> None:
    """A hang guard, not a benchmark (bench/hostile.py measures): these took 20 s to hours before
    issue 13, and take 0.5 to 6 s now on a loaded 2-core machine."""
    text = make()
    assert len(text.encode()) <= MAX_FILE_BYTES
    output = _validate_in_a_process(write(tmp_path / "d", {"m.yaml": text}))
    total = 16_000 if name.startswith("16") else 4 * text.count("{}")
    assert output.endswith(f"\n{total} problem(s) in 1 file(s)\n")
    assert f": E199 … and {total - MAX_PROBLEMS_PER_FILE} more problems in this file\n" in output
    assert len(output.splitlines()) == 2 * (MAX_PROBLEMS_PER_FILE + 1) + 1  # each with its hint, and the count
