"""Loaded manifests survive the trip from a forked worker: every field and every location."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

from bench.generate import experiment, manifest_text

from expctl.manifest import load, subjects, wire
from expctl.manifest.rules import RuleSubject
from expctl.state import DesiredExperiment

REPO = Path(__file__).resolve().parents[2]


def _everything(experiments: list[DesiredExperiment]) -> list[tuple[object, ...]]:
    # field_locations are left out of dataclass equality: compare them explicitly.
    return [(d, dict(d.field_locations), [(v, dict(v.field_locations)) for v in d.variants]) for d in experiments]


def _subject_view(s: RuleSubject | int) -> object:
    if isinstance(s, int):
        return s
    return s, dict(s.field_locations), [dict(v.field_locations) for v in s.variants]


def _manifests() -> list[Path]:
    return sorted((REPO / "experiments.d").glob("*.yaml")) + sorted((REPO / "tests" / "cases").rglob("*.yaml"))


def test_a_subject_derived_from_a_valid_experiment_is_the_documents(tmp_path: Path) -> None:
    for i in range(6):  # also the benchmark's flow-style upstreams
        (tmp_path / f"b{i}.yaml").write_text(manifest_text(experiment(i, changed=i % 2 == 0)))
    derived = 0
    for path in [*_manifests(), *sorted(tmp_path.iterdir())]:
        for doc, desired in load._read_file(path)[0]:
            if desired is not None and doc.value_locations.get(()) == doc.start:
                assert _subject_view(subjects.desired_rule_subject(desired)) == _subject_view(
                    subjects.rule_subject(doc))  # type: ignore[arg-type]
                derived += 1
    assert derived > 50


def test_a_pickled_load_result_comes_back_whole() -> None:
    loaded = load._load_files(_manifests())
    assert loaded.experiments and loaded.subjects and loaded.problems  # the cases include invalid manifests
    back = pickle.loads(pickle.dumps(loaded))
    assert _everything(back.experiments) == _everything(loaded.experiments)
    assert any(isinstance(s, int) for s in loaded.subjects)  # derived by the receiver
    assert any(not isinstance(s, int) for s in loaded.subjects)  # invalid documents send theirs
    assert list(map(_subject_view, back.subjects)) == list(map(_subject_view, loaded.subjects))
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
