"""File- and YAML-level rules (E101 to E109): each with a passing and a failing case at an exact position."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from expctl.adapters.manifest.load import MAX_FILE_BYTES
from expctl.adapters.manifest.yamlread import MAX_DEPTH

from .helpers import BASE, Found, assert_clean, edit, load_files, load_one, only_problem, position, unmark, write

# (id, YAML text with « at the expected position, expected code)
FAILING: list[tuple[str, str, str]] = [
    ("E102 duplicate top-level key", BASE + "«name: exp-b\n", "E102"),
    ("E102 duplicate nested key", edit(BASE, "    weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1",
                                       "    weight: 1\n    «weight: 2\n    upstream:\n"
                                       "      internal_id: partner-checkpoint-rc1"), "E102"),
    ("E102 duplicate key in flow mapping", edit(BASE, "{from_env: PARTNER_RC1_KEY}",
                                                "{from_env: A, «from_env: B}"), "E102"),
    ("E103 anchor", edit(BASE, "display_name: Preview A", "display_name: «&name Preview A"), "E103"),
    ("E103 anchor on a mapping", edit(BASE, "    upstream:\n      internal_id: partner-checkpoint-rc1",
                                      "    upstream: «&up\n      internal_id: partner-checkpoint-rc1"), "E103"),
    ("E103 alias", BASE.replace("\ndescription: Compare two checkpoints", "\ndescription: «*x"), "E103"),
    ("E104 custom tag on a scalar", edit(BASE, "display_name: Preview A", "display_name: «!secret Preview A"), "E104"),
    ("E104 python tag on a scalar", edit(BASE, "display_name: Preview A",
                                         "display_name: «!!python/name:os.system Preview A"), "E104"),
    ("E104 custom tag on a mapping", edit(BASE, "    upstream:\n      internal_id: partner-checkpoint-rc1",
                                          "    upstream: «!Upstream\n      internal_id: partner-checkpoint-rc1"),
     "E104"),
    ("E104 python tag on a mapping", edit(BASE, "    upstream:\n      internal_id: partner-checkpoint-rc1",
                                          "    upstream: «!!python/object:os.system\n"
                                          "      internal_id: partner-checkpoint-rc1"), "E104"),
    ("E104 collection tag on a scalar", edit(BASE, "display_name: Preview A", "display_name: «!!set Preview A"),
     "E104"),
    ("E104 merge key", BASE + "«<<: {status: active}\n", "E104"),
    ("E101 bad !!bool", edit(BASE, "archived: false", "archived: «!!bool maybe"), "E101"),
    ("E101 bad !!timestamp", edit(BASE, "display_name: Preview A", "display_name: «!!timestamp soon"), "E101"),
    ("E101 bad !!int", edit(BASE, "weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1",
                            "weight: «!!int one\n    upstream:\n      internal_id: partner-checkpoint-rc1"), "E101"),
    ("E101 complex key", BASE + "? «[a, b]\n: c\n", "E101"),
    ("E105 nesting over the limit",
     edit(BASE, "      base_url: https://partner.example.com/v1\n    api_key: {from_env",
          # root, variants, variant, upstream, extra_body = 5 levels; the 60th list is level 65.
          "      base_url: https://partner.example.com/v1\n      extra_body: {x: " + "[" * (MAX_DEPTH - 5) + "«["
          + "]" * (MAX_DEPTH - 4) + "}\n    api_key: {from_env"), "E105"),
    ("E109 a list", "# yaml-language-server: $schema=../experiments.schema.json\n«- a\n- b\n", "E109"),
    ("E109 a scalar", "«just text\n", "E109"),
    ("E109 second document", BASE + "«---\n42\n", "E109"),
]


@pytest.mark.parametrize(("text", "code"), [(t, c) for _, t, c in FAILING], ids=[i for i, _, _ in FAILING])
def test_failing_yaml_rule(tmp_path: Path, text: str, code: str) -> None:
    source, (line, col) = unmark(text)
    result = load_one(tmp_path, source)
    assert only_problem(result) == Found(code, "m.yaml", line, col)


PASSING: list[tuple[str, str]] = [
    ("plain manifest", BASE),
    ("same key in sibling mappings", BASE),  # label/weight/upstream repeat per variant: not duplicates
    ("'&' and '*' inside strings", edit(BASE, "display_name: Preview A", "display_name: 'R&D *preview*'")),
    ("standard tags", edit(BASE, "display_name: Preview A", "display_name: !!str 2024-01-01")),
    ("non-specific tag", edit(BASE, "display_name: Preview A", "display_name: ! Preview A")),
    ("'=' and '<<' as plain values", edit(BASE, "description: Compare two checkpoints", "description: <<")),
    ("nesting at the limit",
     edit(BASE, "      base_url: https://partner.example.com/v1\n    api_key: {from_env",
          "      base_url: https://partner.example.com/v1\n      extra_body: {x: " + "[" * (MAX_DEPTH - 5)
          + "]" * (MAX_DEPTH - 5) + "}\n    api_key: {from_env")),
    ("explicit document markers", "---\n" + BASE + "...\n"),
    ("CRLF line ends", BASE.replace("\n", "\r\n")),
]


@pytest.mark.parametrize("text", [t for _, t in PASSING], ids=[i for i, _ in PASSING])
def test_passing_yaml_rule(tmp_path: Path, text: str) -> None:
    assert_clean(load_one(tmp_path, text))


def test_quoted_and_tagged_values_keep_their_text(tmp_path: Path) -> None:
    text = edit(BASE, "display_name: Preview A", "display_name: !!str 2024-01-01")
    text = edit(text, "description: Compare two checkpoints", "description: '='")
    (experiment,) = load_one(tmp_path, text).experiments
    assert (experiment.display_name, experiment.description) == ("2024-01-01", "=")


def test_duplicate_key_reports_both_lines_and_keeps_checking(tmp_path: Path) -> None:
    source, (line, col) = unmark(BASE + "«status: active\nbogus: 1\n")
    result = load_one(tmp_path, source)
    codes = [(p.code, p.location.line, p.location.col) for p in result.problems]
    assert ("E102", line, col) in codes
    assert ("E201", line + 1, 1) in codes  # the rest of the document is still validated
    duplicate = next(p for p in result.problems if p.code == "E102")
    assert "first at line 8" in duplicate.message


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (BILLION_LAUGHS, (1, 4)),
        # The same bomb after a valid manifest: the loader still stops at the first anchor.
        (BASE + "extra:\n" + "".join("  " + line + "\n" for line in BILLION_LAUGHS.splitlines()),
         (BASE.count("\n") + 2, 6)),
    ],
    ids=["bare", "after-manifest"],
)
def test_billion_laughs_fails_fast_without_expansion(tmp_path: Path, text: str, where: tuple[int, int]) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = load_one(tmp_path, text)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5 * 1024 * 1024  # 9**9 "lol"s would need gigabytes
    assert only_problem(result) == Found("E103", "m.yaml", *where)


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(BASE, encoding="utf-8")
    directory = tmp_path / "experiments.d"
    directory.mkdir()
    (directory / "link.yaml").symlink_to(outside)
    result = load_files(directory, {})
    assert only_problem(result) == Found("E106", "link.yaml", 1, 1)
    assert result.experiments == ()


def test_symlinked_directory_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "m.yaml").write_text(BASE, encoding="utf-8")
    directory = tmp_path / "experiments.d"
    directory.mkdir()
    (directory / "more").symlink_to(outside, target_is_directory=True)
    result = load_files(directory, {})
    assert only_problem(result) == Found("E106", "more", 1, 1)


def test_symlink_inside_the_directory_is_read(tmp_path: Path) -> None:
    directory = write(tmp_path / "experiments.d", {"common/base.txt": BASE})
    (directory / "link.yaml").symlink_to(Path("common") / "base.txt")
    result = load_files(directory, {})
    assert_clean(result)
    assert result.files == (str(directory / "link.yaml"),)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_manifest_does_not_block(tmp_path: Path) -> None:
    directory = tmp_path / "experiments.d"
    directory.mkdir()
    os.mkfifo(directory / "pipe.yaml")
    result = load_files(directory, {})
    assert only_problem(result) == Found("E100", "pipe.yaml", 1, 1)


def padded_to(size: int) -> str:
    """A valid manifest padded with a comment to exactly `size` bytes."""
    padding = size - len(BASE.encode()) - 3
    return BASE + "# " + "x" * padding + "\n"


def test_file_of_exactly_one_mib_is_read(tmp_path: Path) -> None:
    text = padded_to(MAX_FILE_BYTES)
    assert len(text.encode()) == MAX_FILE_BYTES
    assert_clean(load_one(tmp_path, text))


def test_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    result = load_one(tmp_path, padded_to(MAX_FILE_BYTES + 1))
    assert only_problem(result) == Found("E107", "m.yaml", 1, 1)
    assert str(MAX_FILE_BYTES + 1) in result.problems[0].message


@pytest.mark.parametrize(
    ("prefix", "bad"),
    [
        ("", b"\xff"),
        ("apiVersion: expctl/v1\ndisplay_name: Pr", b"\xe9"),  # Latin-1 é
        ("apiVersion: expctl/v1\ndisplay_name: Pr\xc3\xa9vi\xc3\xa9 \xe2\x82\xac ".encode().decode("latin-1"),
         b"\xc3"),  # truncated sequence after multi-byte characters: column counts characters
        ("# ok\r\n# ok\r\nname: ", b"\x80abc"),
    ],
    ids=["first-byte", "latin1", "after-multibyte", "crlf"],
)
def test_non_utf8_is_refused_at_the_bad_byte(tmp_path: Path, prefix: str, bad: bytes) -> None:
    head = prefix.encode("latin-1")
    text = head.decode("utf-8")
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    result = load_one(tmp_path, head + bad + b"\nstatus: draft\n")
    assert only_problem(result) == Found("E108", "m.yaml", line, col)


def test_utf16_file_is_refused(tmp_path: Path) -> None:
    assert only_problem(load_one(tmp_path, BASE.encode("utf-16"))) == Found("E108", "m.yaml", 1, 1)


def test_non_ascii_utf8_is_read(tmp_path: Path) -> None:
    text = edit(BASE, "display_name: Preview A", "display_name: Prévia Ä — 预览 🚀")
    (experiment,) = load_one(tmp_path, text).experiments
    assert experiment.display_name == "Prévia Ä — 预览 🚀"


def test_columns_count_characters_not_bytes(tmp_path: Path) -> None:
    source, where = unmark(edit(BASE, "    upstream:\n      internal_id: partner-checkpoint-rc1\n"
                                      "      base_url: https://partner.example.com/v1\n",
                                "    upstream: {internal_id: 预览-🚀, «bogus: 1, base_url: 'https://x.example.com/v1'}\n"))
    assert where[1] == 35
    assert only_problem(load_one(tmp_path, source)) == Found("E201", "m.yaml", *where)


def test_bom_is_ignored_and_positions_stay_right(tmp_path: Path) -> None:
    assert_clean(load_one(tmp_path / "ok", "\ufeff" + BASE))
    source, where = unmark(edit(BASE, "apiVersion: expctl/v1", "apiVersion: «expctl/v2"))
    assert only_problem(load_one(tmp_path / "second-line", "\ufeff" + source)) == Found("E203", "m.yaml", *where)
    source, where = unmark("apiVersion: «expctl/v2\n" + BASE.split("\n", 2)[2])
    assert where == (1, 13)
    assert only_problem(load_one(tmp_path / "first-line", "\ufeff" + source)) == Found("E203", "m.yaml", *where)


def test_several_documents_per_file(tmp_path: Path) -> None:
    second = BASE.replace("name: exp-a", "name: exp-b").replace("preview/preview-a", "preview/preview-b")
    result = load_one(tmp_path, BASE + "---\n" + second)
    assert_clean(result, experiments=2)
    assert [e.name for e in result.experiments] == ["exp-a", "exp-b"]
    assert result.experiments[1].location.line == BASE.count("\n") + 1


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "---\n# nothing\n---\n"],
    ids=["empty", "blank", "comment", "marker", "marker-end", "null", "two-empty"],
)
def test_empty_documents_are_ignored(tmp_path: Path, text: str) -> None:
    assert_clean(load_one(tmp_path, text), experiments=0)
    assert_clean(load_one(tmp_path / "mixed", text + "---\n" + BASE + "---\n" + text), experiments=1)


def test_only_yaml_files_are_read(tmp_path: Path) -> None:
    result = load_files(tmp_path, {
        "a.yaml": BASE,
        "b.yml": BASE.replace("exp-a", "exp-b").replace("preview/preview-a", "preview/preview-b"),
        "notes.txt": "not: [yaml",
        ".hidden.yaml": "not: [yaml",
        ".git/x.yaml": "not: [yaml",
        "README.md": "# hi",
    })
    assert_clean(result, experiments=2)
    assert [Path(f).name for f in result.files] == ["a.yaml", "b.yml"]


@pytest.mark.parametrize(
    "tail",
    ["bogus: «@reserved\n", "bogus: c«: d\n", "«\tbogus: 1\n", "«]\n", "bogus: 'unterminated\n«"],
    ids=["reserved-char", "nested-colon", "tab-indent", "stray-bracket", "unterminated-quote"],
)
def test_syntax_error_is_located(tmp_path: Path, tail: str) -> None:
    source, where = unmark(BASE + tail)
    result = load_one(tmp_path, source)
    assert only_problem(result) == Found("E101", "m.yaml", *where)
    assert result.experiments == ()  # a file that cannot be parsed yields nothing


def test_position_helper_agrees_with_marker() -> None:
    assert position(BASE, "kind: ModelExperiment") == (3, 1)
    assert unmark("a\nb«c")[1] == (2, 2)
