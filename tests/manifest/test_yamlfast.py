"""The fast YAML path must give exactly what the careful reader gives, or step aside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expctl.manifest.yamlfast import parse_fast
from expctl.manifest.yamlread import parse_documents

REPO = Path(__file__).resolve().parents[2]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=20),
                    st.sampled_from(["yes", "no", "1.5", "0x1f", "2024-01-01", "~", "=", "null", "'q'"]))
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=25)


def _same(path: str, text: str) -> bool:
    fast = parse_fast(path, text)
    if fast is None:
        return False
    slow, problems = parse_documents(path, text)
    assert problems == []
    key = [(d.start, d.data, d.key_locations, d.value_locations) for d in fast]
    assert key == [(d.start, d.data, d.key_locations, d.value_locations) for d in slow]
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trees, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_fast_path_matches_the_careful_reader(documents: list[Any], flow: bool, explicit: bool) -> None:
    text = yaml.safe_dump_all(documents, default_flow_style=flow, explicit_start=explicit, allow_unicode=True)
    _same("m.yaml", text)


def test_fast_path_takes_the_repositorys_manifests() -> None:
    files = sorted((REPO / "experiments.d").glob("*.yaml")) + sorted((REPO / "tests" / "cases").rglob("*.yaml"))
    taken = [f for f in files if _same(str(f), f.read_text())]
    assert len(taken) == len(files)


def test_special_files_step_aside() -> None:
    for text in ("a: &x 1\nb: *x\n", "a: !!str 1\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "a: [[[1]]]\n",
                 "a:\n" + " " * 100 + "b: 1\n", "a: 2024-13-45\n", "%YAML 1.1\n---\na: 1\n", "[a, b]: 1\n"):
        assert parse_fast("m.yaml", text) is None, text
