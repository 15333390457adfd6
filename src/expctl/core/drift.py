"""Drift: database values changed outside expctl since its last apply (docs/design.md#drift).

expctl records, per bound experiment, what it last applied (`expctl_binding.applied`): the
manifest's values of every field it writes. A planned change is **drift** when the manifest still
says what expctl applied (so git did not ask for it) while the database says something else (so
somebody changed the row — the admin UI, an on-call person). `--drift=hold` keeps such values
(the change is listed, marked held, and not applied); `--drift=revert` applies them like any change.

A change the manifest asks for (its value differs from the recorded one) is never drift, even if
the row was also changed outside: the reviewed manifest wins. Without a record (bindings made
before this existed) nothing is drift; the next apply writes the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from expctl.core.plan import Change, ChangeKind, Drift
from expctl.core.state import ActualExperiment, DesiredExperiment, same_json
from expctl.core.variant_plan import with_values

_MISSING = object()


def applied_record(desired: DesiredExperiment) -> dict[str, Any]:
    """What apply records for an experiment once the manifest is applied in full."""
    record: dict[str, Any] = {
        "status": desired.status,
        "archived": desired.archived,
        "display_name": desired.display_name,
        "description": desired.description,
        "public_model_id": desired.public_model_id,
        "variants": {v.label: {"weight": v.weight, "upstream": dict(v.upstream)} for v in desired.variants},
        # Whatever the profile: a manifest within what both profiles accept records the same under both.
        "metadata": None if desired.metadata is None else dict(desired.metadata),
    }
    return record


def record_path(change: Change) -> tuple[str, ...] | None:
    """Where in the applied record the value a change writes lives (None: not tracked)."""
    kind = change.kind
    if kind is ChangeKind.TRANSITION:
        return ("status",)
    if kind in (ChangeKind.ARCHIVE, ChangeKind.UNARCHIVE):
        return ("archived",)
    if kind is ChangeKind.UPDATE_FIELD and change.field is not None:
        return (change.field,)
    if change.variant is None:
        return None
    if kind is ChangeKind.REWEIGHT_VARIANT:
        return ("variants", change.variant, "weight")
    if kind is ChangeKind.HOT_SWAP:
        return ("variants", change.variant, "upstream")
    if kind in (ChangeKind.ADD_VARIANT, ChangeKind.REMOVE_VARIANT):
        return ("variants", change.variant)
    return None


def _at(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _who_when(change: Change, actual: ActualExperiment) -> tuple[str | None, str | None]:
    """When the row was last changed (and by whom, where the gateway's tables say)."""
    if change.kind is ChangeKind.HOT_SWAP:
        row = next((v for v in actual.variants if v.label == change.variant), None)
        version = row.current_version if row else None
        if version is not None and version.effective_at is not None:
            return version.effective_at.isoformat(), version.created_by
    return (actual.updated_at.isoformat() if actual.updated_at else None), None


def mark(changes: Sequence[Change], desired: DesiredExperiment, actual: ActualExperiment, wanted: Mapping[str, Any],
         hold: bool) -> list[Change]:
    """The changes, those that revert drift marked (and held when `hold`); `wanted` is the
    manifest's applied record."""
    if actual.applied is None:
        return list(changes)
    marked = []
    for change in changes:
        path = record_path(change)
        if path is not None and _same(_at(actual.applied, path), _at(wanted, path)):
            at, by = _who_when(change, actual)
            marked.append(with_values(change, drift=Drift(at, by, hold)))
        else:
            marked.append(change)
    return marked


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return same_json(a, b)


def record_after(wanted: Mapping[str, Any], previous: Mapping[str, Any] | None, changes: Sequence[Change]
                 ) -> dict[str, Any]:
    """What apply records: the manifest's values, except that a held field keeps what was recorded
    before — so it stays drift until the manifest or `--drift=revert` settles it."""
    after: dict[str, Any] = {**wanted, "variants": dict(wanted["variants"])}
    for change in changes:
        path = record_path(change)
        if not change.held or path is None or previous is None:
            continue
        old = _at(previous, path)
        if len(path) == 1:
            after[path[0]] = old
        elif len(path) == 2:  # a variant added or removed outside
            if old is _MISSING:
                after["variants"].pop(path[1], None)
            else:
                after["variants"][path[1]] = old
        else:
            variant = dict(after["variants"].get(path[1], {}))
            if old is not _MISSING:
                variant[path[2]] = old
            after["variants"][path[1]] = variant
    return after


def needs_write(previous: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """Whether the record changes. Python's equality, not the JSON texts': it runs for every
    experiment of every plan (10,000 record walks in Python cost 0.3 s), and the values it could
    confuse (1 and 1.0, true and 1) are told apart where it matters, when a change is marked."""
    return previous is None or previous != after
