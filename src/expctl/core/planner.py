"""The planner: (desired manifests, actual state) -> Plan. Pure: no I/O, no clock, no environment.

Experiments are matched by manifest name ↔ bound experiment and variants by label (or
`renamed_from`), by set algebra over those keys; then fields are compared one by one. Whether an
edit or transition is allowed comes from the tables in `lifecycle`; a refused change is recorded,
never raised. Activation conflicts need the whole plan, so they are checked in a second pass.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from expctl.core import keyreview, lifecycle
from expctl.core.bucketing import variant_shares
from expctl.core.field_plan import edit as _edit
from expctl.core.field_plan import field_changes, json_value, metadata_changes
from expctl.core.lifecycle import Check, Edit
from expctl.core.plan import (
    CHECKED_AT_APPLY,
    Attention,
    Change,
    ChangeKind,
    ExperimentPlan,
    NewVersion,
    Plan,
    UnmanagedExperiment,
)
from expctl.core.profiles import DEFAULT_PROFILE, PROFILES, GatewayProfile
from expctl.core.state import (
    ROUTED_STATUSES,
    ActualExperiment,
    ActualState,
    ActualVariant,
    DesiredExperiment,
    DesiredVariant,
    KeyComparison,
    digest,
    membership_order,
    same_json,
    state_fingerprint,
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


@dataclass(frozen=True)
class _Context:
    key_checks: KeyChecks
    prune: bool
    byok_available: bool = True
    # Whether the gateway profile has `model_experiment.metadata` (2026-11): else never compared or written.
    compare_metadata: bool = True
    host_pins: keyreview.HostPins = dataclasses.field(default_factory=dict)
    # Filled while planning (the one mutable part): what the plan's attention section lists.
    attention: list[Attention] = dataclasses.field(default_factory=list)

    def check(self, experiment: DesiredExperiment, variant: DesiredVariant) -> KeyComparison:
        return self.key_checks.get((experiment.name, variant.label), _UNKNOWN_KEY)

    def pinned(self, change: Change, variant: DesiredVariant) -> Change:
        """The change refused when it would send the variant's key to a host its pin forbids."""
        refusal = keyreview.pin_refusal(self.host_pins, variant) if change.allowed else None
        return change if refusal is None else _with(change, allowed=False, reason=refusal)


def _key_after(check: KeyComparison, variant: DesiredVariant) -> str:
    if check.desired_fingerprint is not None:
        return check.desired_fingerprint
    return f"{CHECKED_AT_APPLY} ({variant.api_key.describe()})"


def _variant_record(variant: DesiredVariant, check: KeyComparison) -> dict[str, object]:
    return {"weight": variant.weight, "upstream": dict(variant.upstream), "api_key": _key_after(check, variant)}


def _with(change: Change, **values: object) -> Change:
    """`dataclasses.replace` for a Change, without re-running its generated __init__ field by field
    (a plan of 10,000 new experiments makes 20,000 of these copies)."""
    copy = object.__new__(Change)
    copy.__dict__.update(change.__dict__, **values)
    return copy


# How each activation check of the lifecycle table is decided for one manifest. None: not by the
# manifest alone — apply writes every variant's version before it activates (VERSIONS_PRESENT), and
# the public id is checked across the whole plan (PUBLIC_ID_FREE, in `_finish`).
_ACTIVATION_CHECKS: dict[Check, Callable[[DesiredExperiment], bool] | None] = {
    Check.HAS_VARIANTS: lambda d: bool(d.variants),
    Check.WEIGHTS_POSITIVE: lambda d: all(v.weight > 0 for v in d.variants),
    Check.VERSIONS_PRESENT: None,
    Check.PUBLIC_ID_FREE: None,
    Check.NOT_ARCHIVED: lambda d: not d.archived,
}


def _activation_problems(desired: DesiredExperiment, checks: Sequence[Check]) -> list[str]:
    return [check.value for check in checks if (holds := _ACTIVATION_CHECKS[check]) and not holds(desired)]


def _transition(current: str, desired: DesiredExperiment) -> Change:
    rule = lifecycle.transition_rule(current, desired.status)
    location = desired.loc("status")
    if not rule.allowed:
        return Change(ChangeKind.TRANSITION, field="status", before=current, after=desired.status,
                      allowed=False, reason=rule.refusal, location=location, routing=True)
    failed = _activation_problems(desired, rule.checks)
    reason = f"activation needs: {', '.join(failed)}" if failed else None
    return Change(ChangeKind.TRANSITION, field="status", before=current, after=desired.status,
                  allowed=not failed, reason=reason, location=location, routing=True)


def plan_create(desired: DesiredExperiment, ctx: _Context) -> list[Change]:
    checks = {v.label: ctx.check(desired, v) for v in desired.variants}
    create_ok = desired.status in ("draft", "active")
    changes = [Change(
        ChangeKind.CREATE_EXPERIMENT, before=None, location=desired.location, allowed=create_ok,
        reason=None if create_ok else f"a new experiment starts as draft or active, not {desired.status}: "
        "set status: draft (or active)",
        after={"public_model_id": desired.public_model_id, "display_name": desired.display_name,
               "description": desired.description, "status": "draft", "archived": desired.archived,
               # Only when set: absent means NULL, and plans of experiments without metadata stay as they were.
               **({"metadata": json_value(desired.metadata)} if ctx.compare_metadata and desired.metadata else {})},
    )]
    changes += [
        ctx.pinned(Change(ChangeKind.ADD_VARIANT, variant=v.label, after=_variant_record(v, checks[v.label]),
                          location=v.location, version=_new_version(v)), v)
        for v in desired.variants
    ]
    if desired.status == "active":
        changes.append(_transition("draft", desired))
    return changes


def _new_version(variant: DesiredVariant) -> NewVersion:
    return NewVersion(variant.upstream, variant.api_key)


def _version_changes(
    desired: DesiredExperiment, variant: DesiredVariant, row: ActualVariant, status: str, ctx: _Context
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
    return [ctx.pinned(_with(change, row_id=row.id, version=_new_version(variant)), variant) for change in changes]


def _rotation(desired: DesiredExperiment, variant: DesiredVariant, status: str, routing: bool,
              ctx: _Context) -> Change | None:
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
        return change if not change.allowed else _with(change, reason="the stored key cannot be decrypted")
    pending = rotate(before=None, after=_key_after(check, variant))
    return pending if not pending.allowed else _with(pending, reason=CHECKED_AT_APPLY)


def _variant_changes(desired: DesiredExperiment, actual: ActualExperiment, status: str, ctx: _Context) -> list[Change]:
    pairs, leftovers = match_variants(desired, actual)
    changes: list[Change] = []
    for variant, row in pairs:
        if row is None:
            added = _edit(ChangeKind.ADD_VARIANT, Edit.VARIANT_STRUCTURE, actual.status, variant.location,
                          variant=variant.label, after=_variant_record(variant, ctx.check(desired, variant)),
                          version=_new_version(variant))
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


def plan_update(desired: DesiredExperiment, actual: ActualExperiment, ctx: _Context) -> list[Change]:
    status = lifecycle.status_for_edits(actual.status, desired.status)
    changes = field_changes(desired, actual, status) + _variant_changes(desired, actual, status, ctx)
    if ctx.compare_metadata:
        changes += metadata_changes(desired, actual, status)
    if desired.status != actual.status:
        changes.insert(0, _transition(actual.status, desired))
    return changes


def plan_removed(actual: ActualExperiment, ctx: _Context) -> tuple[list[Change], tuple[str, ...]]:
    if actual.status == "completed":
        return [Change(ChangeKind.RELEASE, before=actual.managed_name, after=None)], ()
    if lifecycle.edit_allowed(Edit.DELETE, actual.status):
        if ctx.prune:
            return [Change(ChangeKind.DELETE_EXPERIMENT, before="draft", after=None)], ()
        return [], ("manifest removed: this draft is deleted only with --prune",)
    return [Change(
        ChangeKind.DELETE_EXPERIMENT, before=actual.status, after=None, allowed=False, routing=True,
        reason=f"manifest removed while {actual.status}: restore it and set status: completed first; "
        "a completed experiment's manifest can then be removed (it is released, not deleted)",
    )], ()


_ORDER = {kind: i for i, kind in enumerate((
    ChangeKind.CREATE_EXPERIMENT, ChangeKind.TRANSITION, ChangeKind.UPDATE_FIELD, ChangeKind.UNARCHIVE,
    ChangeKind.ARCHIVE, ChangeKind.RENAME_VARIANT, ChangeKind.REMOVE_VARIANT, ChangeKind.ADD_VARIANT,
    ChangeKind.REWEIGHT_VARIANT, ChangeKind.HOT_SWAP, ChangeKind.ROTATE_KEY, ChangeKind.DELETE_EXPERIMENT,
    ChangeKind.RELEASE,
))}


def _sort_key(change: Change) -> tuple[int, int, str, str]:
    activation = change.kind is ChangeKind.TRANSITION and change.after == "active"
    return (1 if activation else 0, _ORDER[change.kind], change.variant or "", change.field or "")


def _final_status(desired: DesiredExperiment | None, actual: ActualExperiment | None, changes: list[Change]) -> str:
    transition = next((c for c in changes if c.kind is ChangeKind.TRANSITION), None)
    if transition is not None and transition.allowed and desired is not None:
        return desired.status
    if actual is not None:
        return actual.status
    return "draft"


def _final_public_id(desired: DesiredExperiment | None, actual: ActualExperiment | None, changes: list[Change]) -> str:
    moved = any(c.field == "public_model_id" and c.allowed for c in changes)
    if desired is not None and (actual is None or moved):
        return desired.public_model_id
    assert actual is not None
    return actual.public_model_id


def build_plan(
    desired: Sequence[DesiredExperiment], actual: ActualState, key_checks: KeyChecks, prune: bool = False,
    *, byok_available: bool = True, host_pins: keyreview.HostPins | None = None,
    profile: GatewayProfile = PROFILES[DEFAULT_PROFILE],
) -> Plan:
    """The plan; `byok_available` words unavailable secrets (apply would fail vs. checked at apply),
    `host_pins` (secret reference -> allowed hosts) refuses changes sending a key elsewhere,
    `profile` says whether `metadata` is planned and is named in the record."""
    ctx = _Context(key_checks, prune, byok_available, profile.has_metadata, host_pins or {})
    desired_by_name = {d.name: d for d in desired}
    bound = actual.by_managed_name()
    drafts: list[tuple[str, DesiredExperiment | None, ActualExperiment | None, list[Change], tuple[str, ...]]] = []
    for name in sorted(set(desired_by_name) | set(bound)):
        d, a = desired_by_name.get(name), bound.get(name)
        notes: tuple[str, ...] = ()
        if a is None:
            assert d is not None
            changes = plan_create(d, ctx)
        elif d is None:
            changes, notes = plan_removed(a, ctx)
        else:
            changes = plan_update(d, a, ctx)
        drafts.append((name, d, a, changes, notes))
    routed = _final_routing(drafts, actual)
    experiments = tuple(_finish(name, d, a, changes, notes, routed) for name, d, a, changes, notes in drafts)
    unavailable = [keyreview.unavailable(d, v, byok_available) for d in desired if d.status != "completed"
                   for v in d.variants if ctx.check(d, v).desired_fingerprint is None]
    return replace(_assemble(experiments, desired, actual, routed), prune=prune, gateway_profile=profile.name,
                   attention=keyreview.ordered(unavailable + ctx.attention))


_Draft = tuple[str, DesiredExperiment | None, ActualExperiment | None, list[Change], tuple[str, ...]]


def _final_routing(drafts: list[_Draft], actual: ActualState) -> dict[str, list[tuple[str, str]]]:
    """public id -> [(experiment key, description)] routed once the plan is applied."""
    routed: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, d, a, changes, _ in drafts:
        if _final_status(d, a, changes) in ROUTED_STATUSES:
            routed[_final_public_id(d, a, changes)].append((f"managed:{name}", f"'{name}'"))
    for experiment in actual.experiments:
        if experiment.managed_name is None and experiment.routed:
            routed[experiment.public_model_id].append((
                f"row:{experiment.id}",
                f"unmanaged experiment '{experiment.name}' (id {experiment.id}, {experiment.status})",
            ))
    return routed


def _finish(
    name: str, d: DesiredExperiment | None, a: ActualExperiment | None, changes: list[Change],
    notes: tuple[str, ...], routed: Mapping[str, list[tuple[str, str]]],
) -> ExperimentPlan:
    public_id = _final_public_id(d, a, changes)
    blockers = [text for key, text in routed.get(public_id, []) if key != f"managed:{name}"]
    after_shares = variant_shares(d.variants) if d else {}
    finished = []
    for change in changes:
        done = change
        if done.kind is ChangeKind.TRANSITION and done.after == "active" and done.allowed and blockers:
            done = _with(done, allowed=False, reason=(
                f"{public_id} is already routed by {', '.join(blockers)}: complete or pause-and-complete it "
                "first (an unmanaged one in the admin UI, or adopt it with `expctl import`)"))
        if done.routing:
            done = _with(done, shares_after=after_shares)
        finished.append(done)
    return ExperimentPlan(
        name=name, public_model_id=d.public_model_id if d else public_id,
        experiment_id=a.id if a else None, changes=tuple(sorted(finished, key=_sort_key)),
        shares_before=variant_shares(a.variants) if a else {}, shares_after=after_shares, notes=notes,
        status_before=a.status if a else None,
    )


def _assemble(
    experiments: tuple[ExperimentPlan, ...], desired: Sequence[DesiredExperiment], actual: ActualState,
    routed: Mapping[str, list[tuple[str, str]]],
) -> Plan:
    planned_ids = {e.public_model_id for e in experiments} | {d.public_model_id for d in desired}
    bound = [e for e in actual.experiments if e.managed_name is not None]
    related = [e for e in actual.experiments if e.managed_name is None and e.public_model_id in planned_ids]
    return Plan(
        experiments=experiments,
        unmanaged=tuple(sorted(
            (UnmanagedExperiment(e.id, e.name, e.public_model_id, e.status)
             for e in actual.experiments if e.managed_name is None),
            key=lambda u: (u.public_model_id, u.name, u.id))),
        state_fingerprint=state_fingerprint(bound + related),
        manifests_digest=digest(sorted((d.to_record() for d in desired), key=lambda r: str(r["name"]))),
        membership_before=actual.membership,
        membership_after=membership_order(public_id for public_id, owners in routed.items() if owners),
        membership_db=actual.routed_membership(),
        membership_corrupt=not actual.membership_raw_ok,
        membership_read=actual.membership_read,
    )
