"""The registry of problem codes is complete, and the documentation is what it generates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expctl.core import codes
from expctl.core.codes import CODES, CONFIG_TABLE, MANIFEST_TABLE, markdown_table, problem
from expctl.core.errors import Location
from expctl.core.manifest.problem_cap import MAX_PROBLEMS_PER_FILE, MORE_PROBLEMS_CODE

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "expctl"
_LITERAL = re.compile(r"""["'](E\d{3})["']""")


def _emitted() -> dict[str, list[str]]:
    """Every code written as a string literal in the source, with where (the registry left out)."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "codes.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for code in _LITERAL.findall(line):
                found.setdefault(code, []).append(f"{path.relative_to(REPO)}:{number}")
    return found


def test_every_code_in_the_source_is_registered() -> None:
    unknown = {code: places for code, places in _emitted().items() if code not in CODES}
    assert not unknown, f"add these codes to src/expctl/core/codes.py: {unknown}"


def test_every_registered_code_is_emitted() -> None:
    # A registered code no rule reports would be a documented promise nothing keeps.
    assert sorted(set(CODES) - set(_emitted())) == []


def test_codes_are_unique_and_well_formed() -> None:
    assert len(CODES) == len(codes._ALL)
    for code, entry in CODES.items():
        assert re.fullmatch(r"E[1-5]\d\d", code) and entry.code == code
        assert entry.title and entry.hint and "|" not in entry.title + entry.hint


def _readme_table(heading: str) -> str:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"| code | {heading} |")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


@pytest.mark.parametrize("table", [MANIFEST_TABLE, CONFIG_TABLE], ids=["manifest", "config"])
def test_readme_tables_are_generated_from_the_registry(table: tuple[tuple[str, ...], str]) -> None:
    prefixes, heading = table
    expected = markdown_table(prefixes, heading)
    assert _readme_table(heading) == expected, (
        "README.md's table differs from the registry; replace it with (or run `python -m expctl.core.codes`):\n\n"
        + expected)


def test_the_tables_cover_every_code_once() -> None:
    rows = [line for table in (MANIFEST_TABLE, CONFIG_TABLE) for line in markdown_table(*table).splitlines()[2:]]
    assert sorted(row.split(" | ")[0].removeprefix("| ") for row in rows) == sorted(CODES)


def _slug(heading: str) -> str:
    """The anchor GitHub makes of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (found := re.match(r"#{1,6} (.+)", line)):
            anchors.add(_slug(found[1]))
    return anchors


def test_every_anchor_names_a_heading_in_the_repository() -> None:
    for entry in CODES.values():
        file, _, anchor = entry.anchor.partition("#")
        assert (REPO / file).is_file(), f"{entry.code}: {file} is not in the repository"
        assert anchor in _anchors(REPO / file), f"{entry.code}: no heading #{anchor} in {file}"


def test_the_cap_is_written_out_as_the_loader_applies_it() -> None:
    cap = CODES[MORE_PROBLEMS_CODE]
    assert f"first {MAX_PROBLEMS_PER_FILE} problems" in cap.hint
    assert f"more than {MAX_PROBLEMS_PER_FILE} problems" in cap.title


def test_problem_takes_the_default_hint_unless_given_one() -> None:
    where = Location("a.yaml", 3, 5)
    assert problem("E402", where, "label 'a' is already used").hint == CODES["E402"].hint
    assert problem("E402", where, "label 'a' is already used", "rename it").hint == "rename it"
    assert problem("E402", where, "m", "").hint == ""
    with pytest.raises(KeyError):
        problem("E999", where, "m")
