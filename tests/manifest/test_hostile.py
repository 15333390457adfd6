"""Hostile input: whatever the bytes, loading never raises and every problem is located.

Random YAML-ish text and random data structures dumped to YAML are fed to `load_directory`. The
outcome is always valid experiments or located problems (line and column >= 1, a stable `E\\d{3}`
code, the path of the file). Sizes and timings of pathological but legal files are bounded too.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expctl.adapters.manifest.load import MAX_FILE_BYTES, LoadResult, load_directory

from .helpers import BASE, assert_clean, edit, load_one, only_problem

pytestmark = pytest.mark.reliability

CODE = re.compile(r"E\d{3}")
HOSTILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(HOSTILE, max_examples=100)  # for the cases the two main properties already cover in part


def check_invariants(result: LoadResult, file: Path) -> None:
    for problem in result.problems:
        assert CODE.fullmatch(problem.code), problem
        assert problem.location.line >= 1 and problem.location.col >= 1, problem
        assert problem.location.path == str(file), problem
        assert problem.message
    for experiment in result.experiments:
        assert experiment.name and experiment.display_name
        assert all(v.weight > 0 for v in experiment.variants)


_SCRATCH = Path(tempfile.mkdtemp(prefix="expctl-hostile-"))


def load_bytes(content: bytes) -> LoadResult:
    """Loads `content` as the only manifest of a scratch directory (reused: examples run one at a time)."""
    file = _SCRATCH / "m.yaml"
    file.write_bytes(content)
    result = load_directory(_SCRATCH)
    check_invariants(result, file)
    return result


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch() -> Iterator[None]:
    yield
    shutil.rmtree(_SCRATCH, ignore_errors=True)


YAML_PIECES = st.sampled_from([
    "apiVersion: expctl/v1\n", "kind: ModelExperiment\n", "name: x\n", "status: active\n", "variants:\n",
    "  - label: a\n", "    weight: 1\n", "    upstream: {internal_id: i, base_url: 'https://h/v1'}\n",
    "    api_key: {from_env: K}\n", "---\n", "...\n", "- ", ": ", "? ", "&a ", "*a ", "!t ", "!!str ", "!!int ",
    "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!python/object ", "<<: ", "%YAML 1.1\n", "%TAG ! t:\n",
    "[", "]", "{", "}", ",", "'", '"', "|\n", ">-\n", "#", "\t", "\n", "  ", "\ufeff", "\x00", "\r\n",
    "~", "null", "yes", "no", "on", ".nan", "-.inf", "0x1F", "0o17", "1e999", "9" * 50, "2024-13-45",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "é", "预览", "🚀", "\u2028", "\x85",
])
YAMLISH = st.lists(st.one_of(YAML_PIECES, st.text(max_size=8)), max_size=40).map("".join)


@HOSTILE
@given(text=YAMLISH)
def test_yaml_ish_text_never_raises(text: str) -> None:
    load_bytes(text.encode("utf-8", "surrogatepass"))


@QUICK
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    load_bytes(data)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "draft", "active", "expctl/v1", "ModelExperiment", "https://h.example.com/v1",
                     "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv12", "'; DROP TABLE x; --", "\x00", "\u202e"]),
)
KEYS = st.one_of(st.text(max_size=12), st.sampled_from([
    "apiVersion", "kind", "name", "public_model_id", "display_name", "description", "status", "archived",
    "variants", "label", "weight", "upstream", "api_key", "from_env", "from_file", "internal_id", "base_url",
    "extra_body", "renamed_from", "<<", "=",
]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                      st.dictionaries(KEYS, inner, max_size=5)), max_leaves=15)


def dump(value: Any) -> str:
    text: str = yaml.dump(value, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False)
    return text


@HOSTILE
@given(value=VALUES)
def test_random_structures_never_raise(value: Any) -> None:
    result = load_bytes(dump(value).encode("utf-8", "surrogatepass"))
    if not isinstance(value, dict) and value is not None:
        assert result.experiments == ()
        assert result.problems  # a non-mapping document is E109 (or worse), never silently skipped


VALID_MANIFEST: dict[str, Any] = yaml.safe_load(BASE)  # never mutated: replace_at copies


def replace_at(document: Any, path: list[int], value: Any) -> Any:
    """`document` with the node chosen by `path` (indexes into children, wrapped) replaced by `value`."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    if isinstance(document, dict):
        key = list(document)[path[0] % len(document)]
        return {**document, key: replace_at(document[key], path[1:], value)}
    index = path[0] % len(document)
    return [*document[:index], replace_at(document[index], path[1:], value), *document[index + 1:]]


@QUICK
@given(path=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=5), value=VALUES)
def test_manifest_with_one_random_node_is_loaded_or_located(path: list[int], value: Any) -> None:
    """Every outcome is a valid experiment or at least one located problem, never silence."""
    document = replace_at(VALID_MANIFEST, path, value)
    result = load_bytes(dump(document).encode("utf-8", "surrogatepass"))
    assert len(result.experiments) + len(result.problems) >= 1


@pytest.mark.parametrize("depth", [1, 2, 62, 63, 64, 65, 300, 20_000])
@pytest.mark.parametrize("kind", ["[", "{a: ", "- "])
def test_deep_nesting_is_bounded(depth: int, kind: str) -> None:
    """The root mapping is level 1: 63 nested collections under it are allowed, the 64th is E105.

    Far deeper input may hit libyaml's own depth limit first (E101): either way it is a located
    problem found quickly, with no recursion in the loader.
    """
    closing = {"[": "]", "{a: ": "}", "- ": ""}[kind]
    nested = ("\n  " if kind == "- " else "") + kind * depth + "1" + closing * depth  # "- - - 1": block style
    started = time.perf_counter()
    result = load_bytes(f"description: {nested}\n".encode())
    assert time.perf_counter() - started < 1.0
    codes = [p.code for p in result.problems]
    if depth < 64:
        assert "E105" not in codes and "E101" not in codes
        assert "E204" in codes  # description is not a string (and required fields are missing)
    else:
        assert codes in (["E105"], ["E101"])
        assert codes == ["E105"] or depth > 1000


def test_five_megabyte_file_is_rejected_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # invalid UTF-8 too: the content must never be decoded
        handle.write(b"\xff" * (5 * 1024 * 1024))
    started = time.perf_counter()
    result = load_directory(tmp_path)
    assert time.perf_counter() - started < 0.5
    assert [p.code for p in result.problems] == ["E107"]


def test_hundred_thousand_item_list_loads_in_bounded_time(tmp_path: Path) -> None:
    items = ", ".join(["k"] * 100_000)
    text = edit(BASE, "      internal_id: partner-checkpoint-rc1\n",
                f"      internal_id: partner-checkpoint-rc1\n      remove_from_body: [{items}]\n")
    assert len(text.encode()) < MAX_FILE_BYTES
    started = time.perf_counter()
    result = load_one(tmp_path, text)
    elapsed = time.perf_counter() - started
    assert_clean(result)
    assert len(result.experiments[0].variants[0].upstream["remove_from_body"]) == 100_000
    assert elapsed < 5.0, f"{elapsed:.2f}s"


def test_huge_integers_do_not_hang(tmp_path: Path) -> None:
    """Python caps int() of long digit strings; a 4,300+ digit weight must be a problem, not a crash."""
    source = edit(BASE, "    weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1",
                  "    weight: " + "9" * 5000 + "\n    upstream:\n      internal_id: partner-checkpoint-rc1")
    result = load_one(tmp_path, source)
    assert result.problems
    assert result.experiments == ()


SQLISH = ["'; DROP TABLE x; --", "Robert'); DROP TABLE model_experiment;--", "1 OR 1=1", "$$; SELECT pg_sleep(10); $$",
          "\\x00\\\\'\"`", "%s %(name)s {0} ${HOME} $(rm -rf /)"]


@pytest.mark.parametrize("value", SQLISH)
def test_sql_looking_strings_are_kept_verbatim(tmp_path: Path, value: str) -> None:
    quoted = "'" + value.replace("'", "''") + "'"
    text = edit(BASE, "description: Compare two checkpoints", f"description: {quoted}")
    text = edit(text, "display_name: Preview A", f"display_name: {quoted}")
    (experiment,) = load_one(tmp_path, text).experiments
    assert experiment.description == value
    assert experiment.display_name == value


def test_control_characters_are_refused_by_the_parser(tmp_path: Path) -> None:
    problem = only_problem(load_one(tmp_path, BASE + "description: a\x00b\n"))
    assert problem.code == "E101"


def test_floats_are_kept_exactly(tmp_path: Path) -> None:
    text = edit(BASE, "      internal_id: partner-checkpoint-rc1\n",
                "      internal_id: partner-checkpoint-rc1\n      extra_body: {t: 0.1, e: 1.0e+300, m: -0.0}\n")
    body = load_one(tmp_path, text).experiments[0].variants[0].upstream["extra_body"]
    assert body["t"] == 0.1 and body["e"] == 1e300 and math.copysign(1, body["m"]) == -1


@pytest.mark.parametrize("extra", [100_000, MAX_FILE_BYTES])
def test_a_file_longer_than_its_fstat_size_is_read_whole_or_refused(tmp_path: Path, extra: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the file grew between fstat and read: the reader must not stop at the size it was told.
    text = BASE + "# " + "x" * extra + "\n"
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        return os.stat_result((info.st_mode, 0, 0, 0, 0, 0, 10, 0, 0, 0))

    monkeypatch.setattr(os, "fstat", stale_fstat)
    result = load_one(tmp_path, text)
    if len(text.encode()) <= MAX_FILE_BYTES:
        assert_clean(result)
    else:
        assert [p.code for p in result.problems] == ["E107"]


@pytest.mark.parametrize("variants", ["true", "1", "'text'", "{label: x}"])
def test_variants_that_are_not_a_list_are_located_not_a_crash(variants: str) -> None:
    text = ("apiVersion: expctl/v1\nkind: ModelExperiment\nname: x\npublic_model_id: p/x\ndisplay_name: X\n"
            f"variants: {variants}\n")
    result = load_bytes(text.encode())
    assert result.experiments == ()
    assert [p.location.line for p in result.problems] == [6]
