"""Loaded manifests survive the trip from a forked worker: every field and every location."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

from expctl.manifest import load, wire
from expctl.state import DesiredExperiment

REPO = Path(__file__).resolve().parents[2]


def _everything(experiments: list[DesiredExperiment]) -> list[tuple[object, ...]]:
    # field_locations are left out of dataclass equality: compare them explicitly.
    return [(d, dict(d.field_locations), [(v, dict(v.field_locations)) for v in d.variants]) for d in experiments]


def test_a_pickled_load_result_comes_back_whole() -> None:
    files = sorted((REPO / "experiments.d").glob("*.yaml")) + sorted((REPO / "tests" / "cases").rglob("*.yaml"))
    loaded = load._load_files(files)
    assert loaded.experiments and loaded.subjects and loaded.problems  # the cases include invalid manifests
    back = pickle.loads(pickle.dumps(loaded))
    assert _everything(back.experiments) == _everything(loaded.experiments)
    assert [(s, dict(s.field_locations), [dict(v.field_locations) for v in s.variants]) for s in back.subjects] == [
        (s, dict(s.field_locations), [dict(v.field_locations) for v in s.variants]) for s in loaded.subjects]
    assert back.problems == loaded.problems
    assert wire.encode(loaded.experiments, loaded.subjects) is not None  # the fast form was used


def test_values_marshal_cannot_carry_fall_back_to_pickle() -> None:
    loaded = load._load_files(sorted((REPO / "experiments.d").glob("*.yaml"))[:1])
    odd = loaded.experiments[0]
    variant = odd.variants[0]
    object.__setattr__(variant, "upstream", OrderedDict(variant.upstream))
    assert wire.encode(loaded.experiments, loaded.subjects) is None
    back = pickle.loads(pickle.dumps(loaded))
    assert _everything(back.experiments) == _everything(loaded.experiments)
