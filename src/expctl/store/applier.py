"""Applies a plan's allowed changes inside the caller's transaction, in an order that keeps every
constraint true at every step (DESIGN §5):

1. leave routing: complete, pause, delete drafts, release bindings;
2. experiment fields: name, description, public_model_id, unarchive, archive;
3. structure: create experiments, rename/remove/add/reweight variants, then insert versions;
4. activations (draft → active, paused → active), last, when the public id is free.

Writes are batched per step (executemany runs in psycopg's pipeline mode), so the number of round
trips does not grow with the number of experiments. Experiment updates carry
`WHERE id = … AND status = <expected>` and the apply aborts when a row changed underneath.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, update

from expctl.crypto import encrypt_api_key
from expctl.errors import ConfigError, ConflictError, SecretError
from expctl.plan import ChangeKind, ExperimentPlan, Plan
from expctl.planner import match_variants
from expctl.secrets import SecretResolver
from expctl.state import ActualExperiment, ActualState, DesiredExperiment, DesiredVariant
from expctl.store.tables import expctl_binding, model_experiment, model_experiment_variant
from expctl.store.tables import model_experiment_variant_version as versions_table

E, V = model_experiment, model_experiment_variant
VERSION_CREATED_BY = "expctl"


@dataclass
class _Batch:
    """Rows to write, grouped by statement, filled by walking the plan once."""

    leave_routing: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    delete_drafts: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    field_updates: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    new_experiments: list[dict[str, Any]] = field(default_factory=list)
    new_bindings: list[dict[str, Any]] = field(default_factory=list)
    renames: list[dict[str, Any]] = field(default_factory=list)
    removed_variants: list[str] = field(default_factory=list)
    new_variants: list[dict[str, Any]] = field(default_factory=list)
    reweights: list[dict[str, Any]] = field(default_factory=list)
    new_versions: list[dict[str, Any]] = field(default_factory=list)
    activations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class ApplyContext:
    desired: Mapping[str, DesiredExperiment]
    state: ActualState
    resolver: SecretResolver
    byok_key: bytes | None
    actor: str | None


def _encrypted(ctx: ApplyContext, experiment: str, variant: DesiredVariant) -> dict[str, str]:
    if ctx.byok_key is None:
        raise ConfigError("BYOK_ENCRYPTION_KEY is required to write api keys (new variants, hot-swaps, rotations)")
    secret = ctx.resolver.resolve(variant.api_key)
    if secret is None:
        raise SecretError(
            f"secret {variant.api_key.describe()} for {experiment}/{variant.label} is not available: "
            "set it (environment variable or file) and re-run"
        )
    return encrypt_api_key(ctx.byok_key, secret)


def _version_row(ctx: ApplyContext, experiment: str, variant: DesiredVariant, variant_id: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "variant_id": variant_id, "upstream": dict(variant.upstream),
        "encrypted_api_key": _encrypted(ctx, experiment, variant), "created_by": ctx.actor or VERSION_CREATED_BY,
    }


def _collect_create(batch: _Batch, ctx: ApplyContext, d: DesiredExperiment) -> None:
    experiment_id = str(uuid.uuid4())
    batch.new_experiments.append({
        "id": experiment_id, "public_model_id": d.public_model_id, "name": d.display_name,
        "description": d.description, "status": "draft", "is_archived": d.archived,
    })
    batch.new_bindings.append({"name": d.name, "experiment_id": experiment_id})
    for variant in d.variants:
        variant_id = str(uuid.uuid4())
        batch.new_variants.append({"id": variant_id, "experiment_id": experiment_id, "label": variant.label,
                                   "weight": variant.weight})
        batch.new_versions.append(_version_row(ctx, d.name, variant, variant_id))
    if d.status == "active":
        batch.activations["draft"].append(experiment_id)


_FIELD_COLUMNS = {"display_name": "name", "description": "description", "public_model_id": "public_model_id",
                  "archived": "is_archived"}


def _collect_fields(batch: _Batch, plan: ExperimentPlan, a: ActualExperiment) -> None:
    values = {
        _FIELD_COLUMNS[c.field]: c.after for c in plan.changes
        if c.kind in (ChangeKind.UPDATE_FIELD, ChangeKind.ARCHIVE, ChangeKind.UNARCHIVE) and c.field
    }
    if values:
        expected = _status_after_leaving(plan, a)
        batch.field_updates[tuple(sorted(values))].append({"_id": a.id, "_status": expected, **values})


def _status_after_leaving(plan: ExperimentPlan, a: ActualExperiment) -> str:
    for change in plan.changes:
        if change.kind is ChangeKind.TRANSITION and change.after in ("completed", "paused"):
            return str(change.after)
    return a.status


def _collect_variants(batch: _Batch, ctx: ApplyContext, plan: ExperimentPlan, d: DesiredExperiment,
                      a: ActualExperiment) -> None:
    pairs, leftovers = match_variants(d, a)
    swapped = {c.variant for c in plan.changes if c.kind in (ChangeKind.HOT_SWAP, ChangeKind.ROTATE_KEY)}
    batch.removed_variants += [row.id for row in leftovers]
    for variant, row in pairs:
        if row is None:
            variant_id = str(uuid.uuid4())
            batch.new_variants.append({"id": variant_id, "experiment_id": a.id, "label": variant.label,
                                       "weight": variant.weight})
            batch.new_versions.append(_version_row(ctx, d.name, variant, variant_id))
            continue
        if row.label != variant.label:
            batch.renames.append({"_id": row.id, "label": variant.label})
        if row.weight != variant.weight:
            batch.reweights.append({"_id": row.id, "weight": variant.weight})
        if variant.label in swapped:
            batch.new_versions.append(_version_row(ctx, d.name, variant, row.id))


def collect(plan: Plan, ctx: ApplyContext) -> _Batch:
    """Walks the (fully allowed) plan once and groups its writes by statement."""
    batch = _Batch()
    bound = ctx.state.by_managed_name()
    for experiment in plan.experiments:
        if not experiment.changes:
            continue
        d, a = ctx.desired.get(experiment.name), bound.get(experiment.name)
        if a is None and d is not None:
            _collect_create(batch, ctx, d)
            continue
        assert a is not None
        for change in experiment.changes:
            if change.kind is ChangeKind.TRANSITION and change.after in ("completed", "paused"):
                batch.leave_routing[(a.status, str(change.after))].append(a.id)
            elif change.kind is ChangeKind.TRANSITION and change.after == "active":
                batch.activations[a.status].append(a.id)
            elif change.kind is ChangeKind.DELETE_EXPERIMENT:
                batch.delete_drafts.append(a.id)
            elif change.kind is ChangeKind.RELEASE:
                batch.releases.append(experiment.name)
        if d is not None:
            _collect_fields(batch, experiment, a)
            _collect_variants(batch, ctx, experiment, d, a)
    return batch


def _expect_rows(result_rowcount: int, expected: int, what: str) -> None:
    if result_rowcount != expected:
        raise ConflictError(
            f"{what}: {expected - result_rowcount} row(s) changed underneath this run (e.g. in the admin UI); "
            "nothing was applied — re-run to plan against the new state"
        )


def _leave_routing(conn: Connection, batch: _Batch) -> None:
    for (before, after), ids in sorted(batch.leave_routing.items()):
        values: dict[str, Any] = {"status": after, "updated_at": func.now()}
        if after == "completed":
            values["ended_at"] = func.now()
        stmt = update(E).where(E.c.id == bindparam("_id"), E.c.status == before).values(**values)
        result = conn.execute(stmt, [{"_id": i} for i in ids])
        _expect_rows(result.rowcount, len(ids), f"{before} -> {after}")
    if batch.delete_drafts:
        drop = delete(E).where(E.c.id == bindparam("_id"), E.c.status == "draft")
        result = conn.execute(drop, [{"_id": i} for i in batch.delete_drafts])
        _expect_rows(result.rowcount, len(batch.delete_drafts), "delete drafts")
    if batch.releases:
        conn.execute(delete(expctl_binding).where(expctl_binding.c.name.in_(batch.releases)))


def _fields(conn: Connection, batch: _Batch) -> None:
    for columns, rows in sorted(batch.field_updates.items()):
        stmt = (update(E).where(E.c.id == bindparam("_id"), E.c.status == bindparam("_status"))
                .values(updated_at=func.now(), **{c: bindparam(c) for c in columns}))
        result = conn.execute(stmt, rows)
        _expect_rows(result.rowcount, len(rows), "field update")


def _structure(conn: Connection, batch: _Batch) -> None:
    if batch.new_experiments:
        conn.execute(insert(E), batch.new_experiments)
        conn.execute(insert(expctl_binding), batch.new_bindings)
    if batch.renames:
        # Two steps, so that swapping two labels never trips the (experiment_id, label) unique constraint.
        temp = [{"_id": r["_id"], "label": f"~expctl-rename-{r['_id']}"} for r in batch.renames]
        stmt = update(V).where(V.c.id == bindparam("_id")).values(label=bindparam("label"), updated_at=func.now())
        conn.execute(stmt, temp)
        conn.execute(stmt, batch.renames)
    if batch.removed_variants:
        conn.execute(delete(V).where(V.c.id.in_(batch.removed_variants)))
    if batch.new_variants:
        conn.execute(insert(V), batch.new_variants)
    if batch.reweights:
        stmt = update(V).where(V.c.id == bindparam("_id")).values(weight=bindparam("weight"), updated_at=func.now())
        conn.execute(stmt, batch.reweights)
    if batch.new_versions:
        # clock_timestamp(), not now(): a run that waited for the lock must still write the newest version.
        conn.execute(insert(versions_table).values(effective_at=func.clock_timestamp()), batch.new_versions)


def _activate(conn: Connection, batch: _Batch) -> None:
    for before, ids in sorted(batch.activations.items()):
        values: dict[str, Any] = {"status": "active", "updated_at": func.now()}
        if before == "draft":
            values["started_at"] = func.coalesce(E.c.started_at, func.now())
        stmt = update(E).where(E.c.id == bindparam("_id"), E.c.status == before).values(**values)
        result = conn.execute(stmt, [{"_id": i} for i in ids])
        _expect_rows(result.rowcount, len(ids), f"{before} -> active")


def execute(conn: Connection, plan: Plan, ctx: ApplyContext) -> None:
    """Runs every step inside the caller's transaction; the caller commits or rolls back."""
    batch = collect(plan, ctx)
    _leave_routing(conn, batch)
    _fields(conn, batch)
    _structure(conn, batch)
    _activate(conn, batch)


def changed_public_ids(plan: Plan) -> Sequence[str]:
    """Public ids whose per-id routing cache must be dropped: both sides of a public id move."""
    ids = set(plan.routing_public_ids)
    for experiment in plan.experiments:
        for change in experiment.changes:
            if change.field == "public_model_id" and change.allowed:
                ids.update((str(change.before), str(change.after)))
    return sorted(ids)
