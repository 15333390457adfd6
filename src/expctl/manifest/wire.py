"""How loaded manifests travel from a forked loading worker back to the parent — adapter.

Pickle spends most of its time on the twenty-odd `Location` named tuples of each experiment (a
Python-level reduce per object, about ten times the cost of a plain tuple). The same data as flat
tuples of plain values goes through `marshal` (C code, with back-references for repeated
strings such as the file path) in a fraction of that time, and the parent rebuilds the objects.
A rule subject may travel as an int: the index of the experiment it is derived from.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from expctl.errors import Location
from expctl.manifest.rules import RuleSubject, RuleVariant
from expctl.secrets import SecretRef
from expctl.state import DesiredExperiment, DesiredVariant

_new = tuple.__new__
Flat = tuple[Any, ...]


def _flat_locations(locations: Mapping[str, Location]) -> Flat:
    return tuple((name, *location) for name, location in locations.items())


def _locations(flat: Iterable[Flat]) -> dict[str, Location]:
    return {name: _new(Location, (path, line, col)) for name, path, line, col in flat}


def _flat_experiment(d: DesiredExperiment) -> Flat:
    variants = tuple(
        (v.label, v.weight, v.upstream, v.api_key.kind, v.api_key.name, v.renamed_from, tuple(v.location),
         _flat_locations(v.field_locations))
        for v in d.variants)
    return (d.name, d.public_model_id, d.display_name, d.description, d.status, d.archived, tuple(d.location),
            _flat_locations(d.field_locations), variants)


def _experiment(flat: Flat) -> DesiredExperiment:
    name, public_model_id, display_name, description, status, archived, location, locations, variants = flat
    return DesiredExperiment(
        name=name, public_model_id=public_model_id, display_name=display_name, description=description,
        status=status, archived=archived, location=_new(Location, location), field_locations=_locations(locations),
        variants=tuple(
            DesiredVariant(label=label, weight=weight, upstream=upstream, api_key=SecretRef(kind, secret),
                           renamed_from=renamed_from, location=_new(Location, where),
                           field_locations=_locations(where_fields))
            for label, weight, upstream, kind, secret, renamed_from, where, where_fields in variants),
    )


def _flat_subject(s: RuleSubject | int) -> Flat | int:
    if isinstance(s, int):
        return s
    variants = tuple((v.label, v.renamed_from, _flat_locations(v.field_locations)) for v in s.variants)
    return s.name, s.public_model_id, s.status, s.archived, variants, _flat_locations(s.field_locations)


def _subject(flat: Flat | int) -> RuleSubject | int:
    if isinstance(flat, int):
        return flat
    name, public_model_id, status, archived, variants, locations = flat
    return RuleSubject(name, public_model_id, status, archived,
                       tuple(RuleVariant(label, renamed, _locations(where)) for label, renamed, where in variants),
                       _locations(locations))


def encode(experiments: Sequence[DesiredExperiment], subjects: Sequence[RuleSubject | int]) -> bytes | None:
    """The experiments and rule subjects as marshal bytes; None if some value is not plain data
    (then the caller pickles the objects as they are)."""
    try:
        return marshal.dumps((tuple(map(_flat_experiment, experiments)), tuple(map(_flat_subject, subjects))))
    except ValueError:  # e.g. an upstream mapping that is not a plain dict
        return None


def decode(data: bytes) -> tuple[list[DesiredExperiment], list[RuleSubject | int]]:
    experiments, subjects = marshal.loads(data)  # noqa: S302 - our own bytes, from our own forked child
    return list(map(_experiment, experiments)), list(map(_subject, subjects))
