"""The fast block reader against the event reader: whenever it accepts a file, the same data (with
the same types) and the same position for every key and value; otherwise it declines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from bench.generate import experiment, manifest_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expctl.errors import Location
from expctl.manifest.yamlblock import read_block_document
from expctl.manifest.yamlread import Document, parse_documents, read_events

REPO = Path(__file__).resolve().parents[2]


def _exact(doc: Document) -> tuple[Any, ...]:
    """Everything a document holds, with values' types (1 == 1.0 == True in Python)."""
    def typed(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: typed(v) for k, v in value.items()}, list(value)
        if isinstance(value, list):
            return [typed(v) for v in value]
        return type(value), value
    keys, values = doc.all_locations()
    return doc.path, doc.index, doc.start, typed(doc.data), keys, values


def _agrees(text: str) -> bool:
    """Whether the fast reader accepted `text`; fails if it accepted and disagrees."""
    fast = read_block_document("m.yaml", text)
    if fast is None:
        return False
    documents, problems = read_events("m.yaml", text)
    assert problems == []
    assert len(documents) == 1
    assert _exact(fast) == _exact(documents[0])
    return True


def _repository_manifests() -> list[Path]:
    return sorted((REPO / "experiments.d").glob("*.yaml")) + sorted((REPO / "tests" / "cases").rglob("*.yaml"))


def test_agrees_on_the_repositorys_manifests_and_accepts_almost_all() -> None:
    files = _repository_manifests()
    accepted = sum(_agrees(file.read_text()) for file in files)
    assert accepted >= 0.9 * len(files)


def test_agrees_on_the_benchmarks_manifests() -> None:
    for i in range(8):
        assert _agrees(manifest_text(experiment(i, changed=i % 3 == 0)))


def test_parse_documents_takes_the_fast_reader_for_block_manifests() -> None:
    text = manifest_text(experiment(1))
    (doc,), problems = parse_documents("m.yaml", text)
    assert problems == []
    assert doc.map_flows is not None  # only the fast reader leaves flows to map later


def test_flows_are_mapped_only_when_asked_about() -> None:
    text = 'top: 1\nlist:\n  - k: {"a": [1, {"b": 2}]}\n'
    doc = read_block_document("m.yaml", text)
    assert doc is not None
    assert doc.field_locations(("list", 0), ("k", "missing"), every=True) == {
        "k": Location("m.yaml", 3, 8), "missing": Location("m.yaml", 3, 5)}
    assert doc.unmapped_flows  # nothing inside the flow was asked about
    assert doc.location_of(("list", 0, "k", "a", 1, "b")) == Location("m.yaml", 3, 24)
    assert doc.location_of(("list", 0, "k", "a"), prefer_key=True) == Location("m.yaml", 3, 9)
    assert not doc.unmapped_flows


ACCEPTED = [
    "a: 1\n",
    "a: b # comment\n# full-line comment\n  # indented comment\nc: 'q # not a comment'\n",
    "list:\n- x\n- y: 1\n  z: [1, 2.5, true, ~, {k: v}]\nafter: \"\"\n",
    "m:\n    deep:\n        - {\"a\": [], 'b': {}}\n    back: -3\n",
    "t: 2024-01-02\nu: 0x1f\nv: 1_000\nw: .inf\nx: yes\nurl: https://h.example/v1?a=b#frag\n",
    "n: -\u00e9t\u00e9\nk: caf\u00e9 \U0001f600\n",
    "a: x#y # z\n",
    'a: {"k":1,"l":[1,2.5,-0,true,null,"x"]}\nb: {"k": 1.5E3, "m": 1e5, "n": NaN, "o": -1.5e-3}\n',
    "a: [{}, [], {b: [c, {d: e}]}]  # nested\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepts_and_agrees(text: str) -> None:
    assert _agrees(text)


DECLINED = [
    "", "# only a comment\n", "---\na: 1\n", "a: 1\n---\nb: 2\n", "a: 1\n...\n", "%YAML 1.1\n---\na: 1\n",
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: !custom 1\n", "a: |\n  text\n", "a: >\n  text\n",
    "a: b\n  c\n", "a: 'x\n  y'\n", "a: \"x\\ty\"\n", "a:\tb\n", "a: 1\r\nb: 2\r\n", "a: 1\nb:\n", "a:\nb: 1\n",
    "a: 1\na: 2\n", "on: 1\n", "\"q\": 1\n", "? a\n: b\n", "a: b: c\n", "a: {b: 1, b: 2}\n", "a: {b: 1,}\n",
    "a: [1 2]\n", "a: {b:1}\n", "a: {url: http://x}\n", "a: [\n  1]\n", "  a: 1\n", "- a\n", "a:\n  - - x\n",
    "a: 'it''s'\n", "<<: {b: 1}\n", "a: b\x85c\n", "a: \ufeffb\n", "a: [1] x\n", "b: [x#y]\n", "a: -\n",
    "a: 1\n b: 2\n", "a: b\x7f\n", "a: \x01\n", "a: [\x00]\n",
]


@pytest.mark.parametrize("text", DECLINED)
def test_declines_what_it_does_not_handle(text: str) -> None:
    assert read_block_document("m.yaml", text) is None


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=20),
                    st.floats(allow_nan=False), st.dates(),
                    st.sampled_from(["yes", "no", "1.5", "0x1f", "2024-01-01", "~", "=", "null", "'q'", "<<", "",
                                     "a: b", "x #y", "-1", "- a", "12:30", "[a]", "{a}"]))
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.text(st.characters(codec="ascii"), max_size=8), children, max_size=4)), max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"[a-z_]{1,6}", fullmatch=True), trees, min_size=1, max_size=5),
       st.sampled_from([False, None]), st.sampled_from([2, 4]))
def test_agrees_on_dumped_trees(tree: dict[str, Any], flow: bool | None, indent: int) -> None:
    _agrees(yaml.safe_dump(tree, default_flow_style=flow, indent=indent, allow_unicode=True, sort_keys=False))


# Characters that change what YAML means; mutations of real manifests with them must never make
# the two readers disagree.
SIGNIFICANT = [*list(" \n:-#'\"{}[],&*!|>?%@`~\t\\.0a"), ": ", "- ", " #", "  ", "\n  ", "\n- ", "{}", "[]"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 7), st.lists(st.tuples(st.floats(0, 1), st.sampled_from(SIGNIFICANT), st.integers(0, 2)),
                                   min_size=1, max_size=3))
def test_agrees_on_mutated_manifests(index: int, edits: list[tuple[float, str, int]]) -> None:
    text = manifest_text(experiment(index))
    for where, piece, removed in edits:
        at = int(where * len(text))
        text = text[:at] + piece + text[at + removed:]
    _agrees(text)
