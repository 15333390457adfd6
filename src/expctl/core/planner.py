"""The planner: (desired manifests, actual state) -> Plan. Pure: no I/O, no clock, no environment.

Experiments are matched by manifest name ↔ experiment bound in the run's scope (or the row a
manifest `adopt`s), variants by label (or `renamed_from`, in `variant_plan`); then fields are
compared one by one, and changes that revert drift are marked (`drift`). Whether an
edit or transition is allowed comes from the tables in `lifecycle`; a refused change is recorded,
never raised. Activation conflicts need the whole plan, so they are checked in a second pass.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from expctl.core import drift, keyreview, lifecycle
from expctl.core.bucketing import variant_shares
from expctl.core.field_plan import field_changes, json_value, metadata_changes
from expctl.core.lifecycle import Check, Edit
from expctl.core.plan import (
    DEFAULT_SCOPE,
    Change,
    ChangeKind,
    ExperimentPlan,
    Plan,
    UnmanagedExperiment,
)
from expctl.core.profiles import DEFAULT_PROFILE, PROFILES, GatewayProfile
from expctl.core.state import (
    ROUTED_STATUSES,
    ActualExperiment,
    ActualState,
    DesiredExperiment,
    digest,
    membership_order,
    state_fingerprint,
)
from expctl.core.variant_plan import (
    KeyChecks,
    PlanContext,
    new_version,
    variant_changes,
    variant_record,
    with_values,
)

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


def plan_create(desired: DesiredExperiment, ctx: PlanContext) -> list[Change]:
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
        ctx.pinned(Change(ChangeKind.ADD_VARIANT, variant=v.label, after=variant_record(v, checks[v.label]),
                          location=v.location, version=new_version(v)), v)
        for v in desired.variants
    ]
    if desired.status == "active":
        changes.append(_transition("draft", desired))
    return changes


def plan_update(desired: DesiredExperiment, actual: ActualExperiment, ctx: PlanContext) -> list[Change]:
    status = lifecycle.status_for_edits(actual.status, desired.status)
    changes = field_changes(desired, actual, status) + variant_changes(desired, actual, status, ctx)
    if ctx.compare_metadata:
        changes += metadata_changes(desired, actual, status)
    if desired.status != actual.status:
        changes.insert(0, _transition(actual.status, desired))
    return changes


def plan_removed(actual: ActualExperiment, ctx: PlanContext) -> tuple[list[Change], tuple[str, ...]]:
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
    ChangeKind.ADOPT_EXPERIMENT, ChangeKind.CREATE_EXPERIMENT, ChangeKind.TRANSITION, ChangeKind.UPDATE_FIELD,
    ChangeKind.UNARCHIVE, ChangeKind.ARCHIVE, ChangeKind.RENAME_VARIANT, ChangeKind.REMOVE_VARIANT,
    ChangeKind.ADD_VARIANT, ChangeKind.REWEIGHT_VARIANT, ChangeKind.HOT_SWAP, ChangeKind.ROTATE_KEY,
    ChangeKind.DELETE_EXPERIMENT, ChangeKind.RELEASE,
))}


def _sort_key(change: Change) -> tuple[int, int, str, str]:
    activation = change.kind is ChangeKind.TRANSITION and change.after == "active"
    return (1 if activation else 0, _ORDER[change.kind], change.variant or "", change.field or "")


def _final_status(desired: DesiredExperiment | None, actual: ActualExperiment | None, changes: list[Change]) -> str:
    transition = next((c for c in changes if c.kind is ChangeKind.TRANSITION), None)
    if transition is not None and transition.allowed and not transition.held and desired is not None:
        return desired.status
    if actual is not None:
        return actual.status
    return "draft"


def _final_public_id(desired: DesiredExperiment | None, actual: ActualExperiment | None, changes: list[Change]) -> str:
    moved = any(c.field == "public_model_id" and c.allowed and not c.held for c in changes)
    if desired is not None and (actual is None or moved):
        return desired.public_model_id
    assert actual is not None
    return actual.public_model_id


@dataclass(frozen=True)
class Scope:
    """What one run plans: which bindings are its own (`scope`), which manifest names (`target`,
    glob patterns of `--only`; None = all), under which environment's name, and what drift does."""

    scope: str = DEFAULT_SCOPE
    target: tuple[str, ...] | None = None
    environment: str | None = None
    drift_mode: str = "hold"

    def selects(self, name: str) -> bool:
        return self.target is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.target)

    def unmatched(self, names: set[str]) -> list[str]:
        """The target's patterns that match none of `names` (a typo must not plan nothing)."""
        return [p for p in self.target or () if not any(fnmatch.fnmatchcase(n, p) for n in names)]


def build_plan(
    desired: Sequence[DesiredExperiment], actual: ActualState, key_checks: KeyChecks, prune: bool = False,
    *, byok_available: bool = True, host_pins: keyreview.HostPins | None = None,
    profile: GatewayProfile = PROFILES[DEFAULT_PROFILE], scope: Scope | None = None,
) -> Plan:
    """The plan; `byok_available` words unavailable secrets (apply would fail vs. checked at apply),
    `host_pins` (secret reference -> allowed hosts) refuses changes sending a key elsewhere,
    `profile` says whether `metadata` is planned and is named in the record, `scope` says which
    bindings and manifests the run plans (others are left alone, neither changed nor removed)."""
    scope = scope or Scope()
    ctx = PlanContext(key_checks, prune, byok_available, profile.has_metadata, host_pins or {},
                   hold_drift=scope.drift_mode == "hold")
    desired = [d for d in desired if scope.selects(d.name)]
    desired_by_name = {d.name: d for d in desired}
    bound = {name: a for name, a in actual.by_managed_name().items() if scope.selects(name)}
    rows = {e.id: e for e in actual.experiments}
    drafts: list[_Draft] = []
    adopted: set[str] = set()
    for name in sorted(set(desired_by_name) | set(bound)):
        d, a = desired_by_name.get(name), bound.get(name)
        notes: tuple[str, ...] = ()
        if a is None:
            assert d is not None
            a, changes = _create_or_adopt(d, rows, ctx)
            if a is not None:
                adopted.add(a.id)
        elif d is None:
            changes, notes = plan_removed(a, ctx)
        else:
            changes = _adopt_check(d, a) + _update(d, a, ctx)
        drafts.append((name, d, a, changes, notes))
    routed = _final_routing(drafts, actual, set(bound) | set(desired_by_name), adopted)
    experiments = tuple(_finish(name, d, a, changes, notes, routed, ctx) for name, d, a, changes, notes in drafts)
    unavailable = [keyreview.unavailable(d, v, byok_available) for d in desired if d.status != "completed"
                   for v in d.variants if ctx.check(d, v).desired_fingerprint is None]
    return replace(_assemble(experiments, desired, actual, routed, adopted, scope), prune=prune,
                   gateway_profile=profile.name, attention=keyreview.ordered(unavailable + ctx.attention),
                   environment=scope.environment, scope=scope.scope, target=scope.target,
                   drift_mode=scope.drift_mode)


def _update(d: DesiredExperiment, a: ActualExperiment, ctx: PlanContext) -> list[Change]:
    changes = plan_update(d, a, ctx)
    return drift.mark(changes, d, a, drift.applied_record(d), ctx.hold_drift)


def _create_or_adopt(d: DesiredExperiment, rows: Mapping[str, ActualExperiment], ctx: PlanContext
                     ) -> tuple[ActualExperiment | None, list[Change]]:
    """A new experiment, or (manifest `adopt`) the binding of an existing row and its differences."""
    if d.adopt is None:
        return None, plan_create(d, ctx)
    row = rows.get(d.adopt)
    location = d.loc("adopt")
    change = Change(ChangeKind.ADOPT_EXPERIMENT, before=None, after={"experiment_id": d.adopt}, location=location)
    refusal = None
    if row is None:
        refusal = (f"no experiment has id {d.adopt} (deleted since the import?): remove `adopt` to create a new "
                   "experiment instead")
    elif row.managed_name is not None:
        refusal = f"experiment {d.adopt} is already managed by manifest '{row.managed_name}'"
    elif row.owner_scope is not None:
        refusal = f"experiment {d.adopt} is managed by another scope ({row.owner_scope!r})"
    if refusal is not None or row is None:
        return None, [with_values(change, allowed=False, reason=refusal)]
    return row, [change, *plan_update(d, row, ctx)]


def _adopt_check(d: DesiredExperiment, a: ActualExperiment) -> list[Change]:
    """An `adopt` left in a bound manifest is harmless when it names the bound row."""
    if d.adopt is None or d.adopt == a.id:
        return []
    return [Change(ChangeKind.ADOPT_EXPERIMENT, before=a.id, after={"experiment_id": d.adopt}, allowed=False,
                   location=d.loc("adopt"),
                   reason=f"manifest '{d.name}' is already bound to experiment {a.id}: remove `adopt`")]


_Draft = tuple[str, DesiredExperiment | None, ActualExperiment | None, list[Change], tuple[str, ...]]


def _final_routing(drafts: list[_Draft], actual: ActualState, planned: set[str], adopted: set[str]
                   ) -> dict[str, list[tuple[str, str]]]:
    """public id -> [(experiment key, description)] routed once the plan is applied. Rows this run
    does not plan (unmanaged, another scope's, not targeted) route as they do now."""
    routed: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, d, a, changes, _ in drafts:
        if _final_status(d, a, changes) in ROUTED_STATUSES:
            routed[_final_public_id(d, a, changes)].append((f"managed:{name}", f"'{name}'"))
    for experiment in actual.experiments:
        if not experiment.routed or experiment.id in adopted or experiment.managed_name in planned:
            continue
        if experiment.managed_name is not None:
            described = f"'{experiment.managed_name}' (not targeted by --only, {experiment.status})"
        elif experiment.owner_scope is not None:
            described = (f"experiment '{experiment.name}' of scope {experiment.owner_scope!r} (id {experiment.id}, "
                         f"{experiment.status})")
        else:
            described = f"unmanaged experiment '{experiment.name}' (id {experiment.id}, {experiment.status})"
        routed[experiment.public_model_id].append((f"row:{experiment.id}", described))
    return routed


def _finish(
    name: str, d: DesiredExperiment | None, a: ActualExperiment | None, changes: list[Change],
    notes: tuple[str, ...], routed: Mapping[str, list[tuple[str, str]]], ctx: PlanContext,
) -> ExperimentPlan:
    public_id = _final_public_id(d, a, changes)
    blockers = [text for key, text in routed.get(public_id, []) if key != f"managed:{name}"]
    after_shares = variant_shares(d.variants) if d else {}
    finished = []
    for change in changes:
        done = change
        if (done.kind is ChangeKind.TRANSITION and done.after == "active" and done.allowed and not done.held
                and blockers):
            done = with_values(done, allowed=False, reason=(
                f"{public_id} is already routed by {', '.join(blockers)}: complete or pause-and-complete it "
                "first (an unmanaged one in the admin UI, or adopt it with `expctl import`)"))
        if done.routing:
            done = with_values(done, shares_after=after_shares)
        finished.append(done)
    return ExperimentPlan(
        name=name, public_model_id=d.public_model_id if d else public_id,
        experiment_id=a.id if a else None, changes=tuple(sorted(finished, key=_sort_key)),
        shares_before=variant_shares(a.variants) if a else {}, shares_after=after_shares, notes=notes,
        status_before=a.status if a else None, applied=_applied(d, a, finished, ctx),
    )


def _applied(d: DesiredExperiment | None, a: ActualExperiment | None, changes: Sequence[Change], ctx: PlanContext
             ) -> dict[str, object] | None:
    """The record of what is applied (docs/design.md#drift) when apply must write it."""
    if d is None:
        return None
    wanted = drift.applied_record(d)
    previous = a.applied if a is not None and a.managed_name is not None else None
    after = drift.record_after(wanted, previous, changes)
    return after if drift.needs_write(previous, after) else None


def _assemble(
    experiments: tuple[ExperimentPlan, ...], desired: Sequence[DesiredExperiment], actual: ActualState,
    routed: Mapping[str, list[tuple[str, str]]], adopted: set[str], scope: Scope,
) -> Plan:
    planned_ids = {e.public_model_id for e in experiments} | {d.public_model_id for d in desired}
    planned_rows = {e.experiment_id for e in experiments if e.experiment_id is not None}
    bound = [e for e in actual.experiments if e.id in planned_rows]
    related = [e for e in actual.experiments if e.managed_name is None and e.id not in planned_rows
               and e.public_model_id in planned_ids]
    return Plan(
        experiments=experiments,
        unmanaged=tuple(sorted(
            (UnmanagedExperiment(e.id, e.name, e.public_model_id, e.status, e.owner_scope)
             for e in actual.experiments if e.managed_name is None and e.id not in adopted),
            key=lambda u: (u.public_model_id, u.name, u.id))),
        state_fingerprint=state_fingerprint(bound + related),
        manifests_digest=digest(sorted((d.to_record() for d in desired), key=lambda r: str(r["name"]))),
        membership_before=actual.membership,
        membership_after=membership_order(public_id for public_id, owners in routed.items() if owners),
        membership_db=actual.routed_membership(),
        membership_corrupt=not actual.membership_raw_ok,
        membership_read=actual.membership_read,
    )
