"""Rules that span fields or manifests (docs/design.md#manifests) — pure core.

Each rule reports at the line of the field concerned and names the other place involved, so the
reader can fix either side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from expctl.core.codes import problem
from expctl.core.errors import Location, Problem
from expctl.core.manifest.secretscan import find_key_like
from expctl.core.state import ROUTED_STATUSES


@dataclass(frozen=True)
class RuleVariant:
    label: str
    renamed_from: str | None
    field_locations: Mapping[str, Location] = field(default_factory=dict)

    def loc(self, name: str) -> Location:
        return self.field_locations[name]


@dataclass(frozen=True)
class RuleSubject:
    """What the cross-field rules read of a manifest, taken even from documents with other errors,
    so that one run reports every problem."""

    name: str
    public_model_id: str
    status: str
    archived: bool
    variants: tuple[RuleVariant, ...]
    field_locations: Mapping[str, Location] = field(default_factory=dict)

    def loc(self, name: str) -> Location:
        return self.field_locations[name]


def cross_manifest_problems(experiments: Sequence[RuleSubject]) -> list[Problem]:
    problems: list[Problem] = []
    problems += duplicate_names(experiments)
    problems += routing_conflicts(experiments)
    for experiment in experiments:
        problems += variant_label_problems(experiment)
        problems += archived_active(experiment)
    return problems


def shown(value: str) -> str:
    """A value quoted for a message: cut short, and withheld when it looks like a credential
    (these rules also run on documents that failed validation)."""
    return "(a key-like value)" if find_key_like(value) else f"'{value[:64]}'"


def _first_seen(items: Sequence[tuple[str, Location]]) -> list[tuple[Location, Location, str]]:
    """For each repeated key: (this location, first location, key)."""
    first: dict[str, Location] = {}
    repeats = []
    for key, location in items:
        if key in first:
            repeats.append((location, first[key], key))
        else:
            first[key] = location
    return repeats


def duplicate_names(experiments: Sequence[RuleSubject]) -> list[Problem]:
    return [
        problem("E401", here, f"name {shown(name)} is already used at {first}")
        for here, first, name in _first_seen([(e.name, e.loc("name")) for e in experiments])
    ]


def routing_conflicts(experiments: Sequence[RuleSubject]) -> list[Problem]:
    wanting: dict[str, list[RuleSubject]] = defaultdict(list)
    for experiment in experiments:
        if experiment.status in ROUTED_STATUSES and experiment.public_model_id:
            wanting[experiment.public_model_id].append(experiment)
    problems = []
    for public_id, group in wanting.items():
        for other in group[1:]:
            problems.append(problem(
                "E403", other.loc("status"),
                f"{shown(other.name)} and {shown(group[0].name)} ({group[0].loc('status')}) both want "
                f"{shown(public_id)} active or paused",
            ))
    return problems


def variant_label_problems(experiment: RuleSubject) -> list[Problem]:
    problems = [
        problem("E402", here, f"label {shown(label)} is already used at {first} in {shown(experiment.name)}")
        for here, first, label in _first_seen([(v.label, v.loc("label")) for v in experiment.variants])
    ]
    labels = {v.label for v in experiment.variants}
    renames = [(v.renamed_from, v.loc("renamed_from")) for v in experiment.variants if v.renamed_from]
    for old, location in renames:
        if old in labels:
            problems.append(problem(
                "E404", location, f"renamed_from {shown(old)} is still the label of another variant"))
    problems += [
        problem("E404", here, f"two variants say renamed_from {shown(old)} (first at {first})",
                "only one variant can take over an old label")
        for here, first, old in _first_seen([(o, loc) for o, loc in renames if o is not None])
    ]
    return problems


def archived_active(experiment: RuleSubject) -> list[Problem]:
    if experiment.status == "active" and experiment.archived:
        return [problem("E405", experiment.loc("archived"), "an active experiment cannot be archived")]
    return []
