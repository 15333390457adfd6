"""Rules across fields and files (E401 to E405), and reporting every problem of every file in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import BASE, Found, assert_clean, edit, found, load_files, manifest, position

Files = dict[str, str | bytes]
Expected = list[tuple[str, str, str, int, int]]  # (code, file, needle, occurrence, offset into the needle)


def where(files: Files, file: str, needle: str, occurrence: int = 1, offset: int = 0) -> tuple[int, int]:
    text = files[file]
    assert isinstance(text, str)
    return position(text, needle, offset, occurrence)


A = manifest
# (id, files, [(code, file, needle, occurrence, offset)]): the problem is at `needle` + offset.
FAILING: list[tuple[str, Files, Expected]] = [
    ("E401 same name in two files",
     {"a.yaml": A(name="dup", public_model_id="p/a"), "b.yaml": A(name="dup", public_model_id="p/b")},
     [("E401", "b.yaml", "name: dup", 1, 6)]),
    ("E401 same name in one file",
     {"a.yaml": A(name="dup", public_model_id="p/a") + "---\n" + A(name="dup", public_model_id="p/b")},
     [("E401", "a.yaml", "name: dup", 2, 6)]),
    ("E401 three times",
     {"a.yaml": A(name="dup"), "b.yaml": A(name="dup"), "c.yaml": A(name="dup")},
     [("E401", "b.yaml", "name: dup", 1, 6), ("E401", "c.yaml", "name: dup", 1, 6)]),
    ("E402 duplicate label",
     {"a.yaml": A(variants=(("same", None), ("other", None), ("same", None)))},
     [("E402", "a.yaml", "label: same", 2, 7)]),
    ("E404 renamed_from is another variant's label",
     {"a.yaml": A(variants=(("control", None), ("treatment", "control")))},
     [("E404", "a.yaml", "renamed_from: control", 1, 14)]),
    ("E404 renamed_from is its own label",
     {"a.yaml": A(variants=(("control", "control"),))},
     [("E404", "a.yaml", "renamed_from: control", 1, 14)]),
    ("E404 two variants take over one old label",
     {"a.yaml": A(variants=(("a", "old"), ("b", "old")))},
     [("E404", "a.yaml", "renamed_from: old", 2, 14)]),
    ("E403 two active on one public id",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="active"),
      "b.yaml": A(name="two", public_model_id="preview/x", status="active")},
     [("E403", "b.yaml", "status: active", 1, 8)]),
    ("E403 active and paused",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="paused"),
      "b.yaml": A(name="two", public_model_id="preview/x", status="active")},
     [("E403", "b.yaml", "status: active", 1, 8)]),
    ("E403 two paused in one file",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="paused") + "---\n"
      + A(name="two", public_model_id="preview/x", status="paused")},
     [("E403", "a.yaml", "status: paused", 2, 8)]),
    ("E405 active and archived",
     {"a.yaml": A(status="active", archived="true")},
     [("E405", "a.yaml", "archived: true", 1, 10)]),
    ("E405 archived: yes (YAML 1.1 true)",
     {"a.yaml": A(status="active", archived="yes")},
     [("E405", "a.yaml", "archived: yes", 1, 10)]),
]


@pytest.mark.parametrize(("files", "expected"), [(f, e) for _, f, e in FAILING], ids=[i for i, _, _ in FAILING])
def test_failing_cross_rule(tmp_path: Path, files: Files, expected: Expected) -> None:
    result = load_files(tmp_path, files)
    want = [Found(code, file, *where(files, file, needle, occurrence, offset))
            for code, file, needle, occurrence, offset in expected]
    assert [found(p) for p in result.problems] == want


def test_cross_rule_messages_point_at_the_other_place(tmp_path: Path) -> None:
    files: Files = {"a.yaml": A(name="one", public_model_id="preview/x", status="active"),
                    "b.yaml": A(name="two", public_model_id="preview/x", status="paused")}
    (problem,) = load_files(tmp_path, files).problems
    first = f"{tmp_path / 'a.yaml'}:{where(files, 'a.yaml', 'status: active', offset=8)[0]}:9"
    assert problem.message == f"'two' and 'one' ({first}) both want 'preview/x' active or paused"
    files = {"a.yaml": A(name="dup"), "b.yaml": A(name="dup", public_model_id="p/b")}
    (problem,) = load_files(tmp_path / "names", files).problems
    assert problem.message == f"name 'dup' is already used at {tmp_path / 'names' / 'a.yaml'}:3:7"


PASSING: list[tuple[str, Files]] = [
    ("different names",
     {"a.yaml": A(name="one", public_model_id="p/1"), "b.yaml": A(name="two", public_model_id="p/2")}),
    ("same label in different experiments",
     {"a.yaml": A(name="one", variants=(("control", None),)), "b.yaml": A(name="two", variants=(("control", None),))}),
    ("renamed_from an old label", {"a.yaml": A(variants=(("control", None), ("treatment", "candidate")))}),
    ("swap-free rename chain", {"a.yaml": A(variants=(("b", "a"), ("c", "x")))}),
    ("active and draft on one id",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="active"),
      "b.yaml": A(name="two", public_model_id="preview/x", status="draft")}),
    ("active and completed on one id",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="active"),
      "b.yaml": A(name="two", public_model_id="preview/x", status="completed")}),
    ("two completed on one id",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="completed"),
      "b.yaml": A(name="two", public_model_id="preview/x", status="completed")}),
    ("active on different ids",
     {"a.yaml": A(name="one", public_model_id="preview/x", status="active"),
      "b.yaml": A(name="two", public_model_id="preview/y", status="active")}),
    ("paused and archived", {"a.yaml": A(status="paused", archived="true")}),
    ("completed and archived", {"a.yaml": A(status="completed", archived="true")}),
    ("draft and archived", {"a.yaml": A(status="draft", archived="true")}),
]


@pytest.mark.parametrize("files", [f for _, f in PASSING], ids=[i for i, _ in PASSING])
def test_passing_cross_rule(tmp_path: Path, files: Files) -> None:
    result = load_files(tmp_path, files)
    assert_clean(result, experiments=sum(str(t).count("apiVersion") for t in files.values()))


def test_cross_rules_run_on_documents_with_other_errors(tmp_path: Path) -> None:
    """One run reports everything: a bad weight does not hide a duplicate name."""
    files: Files = {"a.yaml": A(name="dup"), "b.yaml": A(name="dup").replace("weight: 1", "weight: 0", 1)}
    result = load_files(tmp_path, files)
    assert sorted((p.code, Path(p.location.path).name) for p in result.problems) == [
        ("E205", "b.yaml"), ("E401", "b.yaml")]
    assert [e.name for e in result.experiments] == ["dup"]


def test_missing_public_model_id_is_not_a_routing_conflict(tmp_path: Path) -> None:
    files: Files = {f"{name}.yaml": A(name=name, status="active").replace("public_model_id: preview/preview-a\n", "")
                    for name in ("one", "two")}
    codes = sorted(p.code for p in load_files(tmp_path, files).problems)
    assert codes == ["E202", "E202"]


def test_a_run_over_two_bad_files_reports_both(tmp_path: Path) -> None:
    files: Files = {
        "a.yaml": edit(BASE, "status: draft", "status: running"),
        "b.yaml": edit(BASE, "name: exp-a", "name: exp-b").replace("weight: 1", "weight: 0", 1) + "colour: red\n",
        "c.yaml": b"name: \xff\n",
        "d.yaml": "a: [unclosed\n",
        "ok.yaml": edit(BASE, "name: exp-a", "name: exp-ok"),
    }
    result = load_files(tmp_path, files)
    assert [(p.code, Path(p.location.path).name) for p in result.problems] == [
        ("E203", "a.yaml"), ("E205", "b.yaml"), ("E201", "b.yaml"), ("E108", "c.yaml"), ("E101", "d.yaml")]
    assert [e.name for e in result.experiments] == ["exp-ok"]
    assert len(result.files) == 5
