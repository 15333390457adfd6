"""The event reader against PyYAML's own loader: the same data, and every key and value at the
position PyYAML's composer gives its node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expctl.adapters.manifest.yamlread import Path_, parse_documents
from expctl.core.errors import Location

REPO = Path(__file__).resolve().parents[2]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=20),
                    st.floats(allow_nan=False), st.dates(),
                    st.sampled_from(["yes", "no", "1.5", "0x1f", "2024-01-01", "~", "=", "null", "'q'", "<<", ""]))
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=25)


def _oracle_positions(path: str, node: Any, here: Path_, keys: dict[Path_, Location],
                      values: dict[Path_, Location]) -> None:
    """Where PyYAML's composer says each key and value starts."""
    values[here] = Location(path, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _oracle_positions(path, item, (*here, index), keys, values)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(yaml.safe_load(yaml.serialize(key_node)))
            keys[(*here, key)] = Location(path, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _oracle_positions(path, value_node, (*here, key), keys, values)


def _agrees_with_pyyaml(path: str, text: str) -> None:
    documents, problems = parse_documents(path, text)
    assert problems == []
    expected = [d for d in yaml.safe_load_all(text) if d is not None]
    assert [d.data for d in documents] == expected
    roots = [r for r in yaml.compose_all(text, Loader=yaml.SafeLoader) if r is not None]
    roots = [r for r in roots if not (isinstance(r, yaml.ScalarNode) and r.tag.endswith(":null"))]
    assert len(roots) == len(documents)
    for doc, root in zip(documents, roots, strict=True):
        keys: dict[Path_, Location] = {}
        values: dict[Path_, Location] = {}
        _oracle_positions(path, root, (), keys, values)
        assert doc.all_locations() == (keys, values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trees, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_reader_matches_pyyaml(documents: list[Any], flow: bool, explicit: bool) -> None:
    text = yaml.safe_dump_all(documents, default_flow_style=flow, explicit_start=explicit, allow_unicode=True)
    _agrees_with_pyyaml("m.yaml", text)


def test_reader_matches_pyyaml_on_the_repositorys_manifests() -> None:
    files = sorted((REPO / "experiments.d").glob("*.yaml")) + sorted((REPO / "tests" / "cases").rglob("*.yaml"))
    assert len(files) > 50
    for file in files:
        _agrees_with_pyyaml(str(file), file.read_text())


def test_location_of_walks_up_to_the_closest_known_position() -> None:
    (doc,), _ = parse_documents("m.yaml", "a:\n  b: [1, 2]\n")
    assert doc.location_of(("a", "b", 1)) == Location("m.yaml", 2, 10)
    assert doc.location_of(("a", "b", 7, "x")) == Location("m.yaml", 2, 6)
    assert doc.location_of(("a", "b"), prefer_key=True) == Location("m.yaml", 2, 3)
    assert doc.location_of(("nowhere",)) == Location("m.yaml", 1, 1)


def test_documents_start_at_their_directive_marker_or_first_node() -> None:
    text = "# c\na: 1\n---\nb: 2\n...\n%YAML 1.1\n---\nc: 3\n--- 4\n"
    documents, problems = parse_documents("m.yaml", text)
    assert problems == []
    assert [(d.start.line, d.start.col) for d in documents] == [(2, 1), (3, 1), (6, 1), (9, 1)]


def test_the_first_problem_in_the_file_is_the_one_reported() -> None:
    # Read in document order: a later anchor, alias or syntax error does not hide an earlier problem.
    _, problems = parse_documents("m.yaml", "a: !custom x\nb: &anchor y\nc: *anchor\n")
    assert [(p.code, p.location.line) for p in problems] == [("E104", 1)]
    _, problems = parse_documents("m.yaml", "a: 1\na: 2\nb: &anchor [1]\nc: [\n")
    assert [(p.code, p.location.line) for p in problems] == [("E102", 2), ("E103", 3)]
    _, problems = parse_documents("m.yaml", "a: 1\na: 2\nb: [\n")
    assert [p.code for p in problems] == ["E102", "E101"]


def test_keys_that_are_not_plain_scalars_are_refused() -> None:
    for text, code in [("? [a]\n: 1\n", "E101"), ("? {a: 1}\n: 1\n", "E101"), ("a: &k 1\n*k : 2\n", "E103"),
                       ("&k a: 1\n", "E103"), ("<<: {a: 1}\n", "E104"), ("!t a: 1\n", "E104")]:
        _, problems = parse_documents("m.yaml", text)
        assert [p.code for p in problems] == [code], text
    (doc,), problems = parse_documents("m.yaml", "1: a\nyes: b\n~: c\n")
    assert problems == [] and doc.data == {"1": "a", "True": "b", "None": "c"}
