"""The planner's variant changes of one experiment: pairing variants with their rows, adding,
removing, renaming and reweighting them, hot-swaps and key rotations — pure core, split from
`planner` (docs/design.md#plans), with the planning context both share.

A hot-swap and a key rotation of one variant are two changes (a key change is always shown) that
write one new version; whether each is allowed comes from the lifecycle edit table.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from expctl.core import keyreview
from expctl.core.field_plan import edit as _edit
from expctl.core.lifecycle import Edit
from expctl.core.plan import CHECKED_AT_APPLY, Attention, Change, ChangeKind, NewVersion
from expctl.core.state import (
    ROUTED_STATUSES,
    ActualExperiment,
    ActualVariant,
    DesiredExperiment,
    DesiredVariant,
    KeyComparison,
    same_json,
)

KeyChecks = Mapping[tuple[str, str], KeyComparison]
_UNKNOWN_KEY = KeyComparison("unknown", None)


def match_variants(
    desired: DesiredExperiment, actual: ActualExperiment | None
) -> tuple[list[tuple[DesiredVariant, ActualVariant | None]], list[ActualVariant]]:
    """Pairs each desired variant with its row (by label, else by renamed_from); returns leftovers."""
    by_label = {v.label: v for v in actual.variants} if actual else {}
    desired_labels = {v.label for v in desired.variants}
    used: set[str] = set()
    pairs: list[tuple[DesiredVariant, ActualVariant | None]] = []
    for variant in desired.variants:
        row = by_label.get(variant.label)
        if row is None and variant.renamed_from and variant.renamed_from not in desired_labels:
            row = by_label.get(variant.renamed_from)
        if row is not None and row.id in used:
            row = None
        if row is not None:
            used.add(row.id)
        pairs.append((variant, row))
    leftovers = [v for v in (actual.variants if actual else ()) if v.id not in used]
    return pairs, sorted(leftovers, key=lambda v: v.label)


@dataclasses.dataclass(frozen=True)
class PlanContext:
    """What planning one run needs besides the two states; `attention` is filled as it goes."""

    key_checks: KeyChecks
    prune: bool
    byok_available: bool = True
    # Whether the gateway profile has `model_experiment.metadata` (2026-11): else never compared or written.
    compare_metadata: bool = True
    host_pins: keyreview.HostPins = dataclasses.field(default_factory=dict)
    hold_drift: bool = True
    # Filled while planning (the one mutable part): what the plan's attention section lists.
    attention: list[Attention] = dataclasses.field(default_factory=list)

    def check(self, experiment: DesiredExperiment, variant: DesiredVariant) -> KeyComparison:
        return self.key_checks.get((experiment.name, variant.label), _UNKNOWN_KEY)

    def pinned(self, change: Change, variant: DesiredVariant) -> Change:
        """The change refused when it would send the variant's key to a host its pin forbids."""
        refusal = keyreview.pin_refusal(self.host_pins, variant) if change.allowed else None
        return change if refusal is None else with_values(change, allowed=False, reason=refusal)


def key_after(check: KeyComparison, variant: DesiredVariant) -> str:
    if check.desired_fingerprint is not None:
        return check.desired_fingerprint
    return f"{CHECKED_AT_APPLY} ({variant.api_key.describe()})"


def variant_record(variant: DesiredVariant, check: KeyComparison) -> dict[str, object]:
    return {"weight": variant.weight, "upstream": dict(variant.upstream), "api_key": key_after(check, variant)}


def with_values(change: Change, **values: object) -> Change:
    """`dataclasses.replace` for a Change, without re-running its generated __init__ field by field
    (a plan of 10,000 new experiments makes 20,000 of these copies)."""
    copy = object.__new__(Change)
    copy.__dict__.update(change.__dict__, **values)
    return copy


def new_version(variant: DesiredVariant) -> NewVersion:
    return NewVersion(variant.upstream, variant.api_key)


def _version_changes(
    desired: DesiredExperiment, variant: DesiredVariant, row: ActualVariant, status: str, ctx: PlanContext
) -> list[Change]:
    """A hot-swap and a key rotation of one variant are two changes, so a key change is always shown."""
    routing = status in ROUTED_STATUSES
    version = row.current_version
    changes = []
    if version is None or not same_json(version.upstream, variant.upstream):
        changes.append(_edit(ChangeKind.HOT_SWAP, Edit.HOT_SWAP, status, variant.loc("upstream"), variant=variant.label,
                             before=None if version is None else dict(version.upstream),
                             after={**dict(variant.upstream)}, routing=routing))
        moved = None if version is None else keyreview.host_change(desired, variant, version.upstream)
        if moved is not None:
            ctx.attention.append(moved)
    if desired.status != "completed":  # secrets of completed experiments are never resolved or compared
        rotation = _rotation(desired, variant, status, routing, ctx)
        if rotation is not None:
            changes.append(rotation)
    # Both write the same new version (one row even when a variant has both).
    return [ctx.pinned(with_values(change, row_id=row.id, version=new_version(variant)), variant) for change in changes]


def _rotation(desired: DesiredExperiment, variant: DesiredVariant, status: str, routing: bool,
              ctx: PlanContext) -> Change | None:
    check = ctx.check(desired, variant)
    if check.result == "same":
        return None
    rotate = functools.partial(_edit, ChangeKind.ROTATE_KEY, Edit.ROTATE_KEY, status, variant.loc("api_key"),
                               variant=variant.label, field="api_key", routing=routing)
    if check.result == "changed":
        return rotate(before=check.current_fingerprint, after=check.desired_fingerprint)
    if check.result == "unreadable":
        ctx.attention.append(keyreview.unreadable(desired, variant))
        change = rotate(before=None, after=check.desired_fingerprint)
        return change if not change.allowed else with_values(change, reason="the stored key cannot be decrypted")
    pending = rotate(before=None, after=key_after(check, variant))
    return pending if not pending.allowed else with_values(pending, reason=CHECKED_AT_APPLY)


def variant_changes(desired: DesiredExperiment, actual: ActualExperiment, status: str, ctx: PlanContext
                    ) -> list[Change]:
    pairs, leftovers = match_variants(desired, actual)
    changes: list[Change] = []
    for variant, row in pairs:
        if row is None:
            added = _edit(ChangeKind.ADD_VARIANT, Edit.VARIANT_STRUCTURE, actual.status, variant.location,
                          variant=variant.label, after=variant_record(variant, ctx.check(desired, variant)),
                          version=new_version(variant))
            changes.append(ctx.pinned(added, variant))
            continue
        if row.label != variant.label:
            changes.append(_edit(ChangeKind.RENAME_VARIANT, Edit.RENAME_VARIANT, status, variant.loc("label"),
                                 variant=variant.label, field="label", before=row.label, after=variant.label,
                                 row_id=row.id))
        if row.weight != variant.weight:
            changes.append(_edit(ChangeKind.REWEIGHT_VARIANT, Edit.VARIANT_STRUCTURE, actual.status,
                                 variant.loc("weight"), variant=variant.label, field="weight",
                                 before=row.weight, after=variant.weight, row_id=row.id))
        changes += _version_changes(desired, variant, row, status, ctx)
    changes += [
        _edit(ChangeKind.REMOVE_VARIANT, Edit.VARIANT_STRUCTURE, actual.status, desired.loc("variants"),
              variant=row.label, before={"weight": row.weight}, after=None, row_id=row.id)
        for row in leftovers
    ]
    return changes
