"""Reads the actual state: all experiments, variants and current versions in three queries.

The number of queries does not depend on how many experiments exist (docs/design.md#scale). A variant's
current version is its newest row with effective_at <= now(), ties broken by the greater id.
"now" is the statement's start, not the transaction's: an apply that waited for the lock must see
the versions the run before it committed meanwhile (their effective_at is that run's clock time).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, cast, func, select
from sqlalchemy.dialects.postgresql import distinct_on

from expctl.adapters.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)
from expctl.core.plan import DEFAULT_SCOPE
from expctl.core.state import ActualExperiment, ActualState, ActualVariant, ActualVersion, membership_order

E, V, VV, B = model_experiment, model_experiment_variant, model_experiment_variant_version, expctl_binding


def _text(column: ColumnElement[Any]) -> ColumnElement[str]:
    # Ids come back as text: no uuid.UUID built and turned back into str for each of 50,000 rows.
    return cast(column, Text).label(column.key)


EXPERIMENTS_QUERY = select(
    _text(E.c.id), E.c.public_model_id, E.c.name, E.c.description, E.c.status, E.c.is_archived,
    E.c.started_at, E.c.ended_at, E.c.updated_at, B.c.name.label("managed_name"), E.c.metadata, B.c.scope,
    B.c.applied,
).select_from(E.outerjoin(B, B.c.experiment_id == E.c.id)).order_by(E.c.id)

VARIANTS_QUERY = select(_text(V.c.id), _text(V.c.experiment_id), V.c.label, V.c.weight).order_by(
    V.c.experiment_id, V.c.id)

CURRENT_VERSIONS_QUERY = (
    select(_text(VV.c.id), _text(VV.c.variant_id), VV.c.upstream, VV.c.encrypted_api_key, VV.c.effective_at,
           VV.c.created_by)
    .where(VV.c.effective_at <= func.statement_timestamp())
    .ext(distinct_on(VV.c.variant_id))
    .order_by(VV.c.variant_id, VV.c.effective_at.desc(), VV.c.id.desc())
)


def read_state(
    conn: Connection, membership: tuple[str, ...] | None = None, membership_ok: bool = True,
    membership_read: bool = False, scope: str = DEFAULT_SCOPE,
) -> ActualState:
    """The state as `scope` sees it: only its own bindings make an experiment managed; a row bound
    by another scope is listed with that scope and treated like an unmanaged one."""
    # fetchall (one call into the driver) and positional construction: this runs once per row.
    versions = {
        variant_id: ActualVersion(version_id, upstream, encrypted_api_key, effective_at, created_by)
        for version_id, variant_id, upstream, encrypted_api_key, effective_at, created_by
        in conn.execute(CURRENT_VERSIONS_QUERY).all()
    }
    variants: dict[str, list[ActualVariant]] = defaultdict(list)
    for variant_id, experiment_id, label, weight in conn.execute(VARIANTS_QUERY).all():
        variants[experiment_id].append(ActualVariant(variant_id, label, weight, versions.get(variant_id)))
    experiments = tuple(
        ActualExperiment(
            id=experiment_id, public_model_id=public_model_id, name=name, description=description, status=status,
            is_archived=is_archived, variants=tuple(variants.get(experiment_id, ())),
            managed_name=managed_name if bound_scope == scope else None, started_at=started_at, ended_at=ended_at,
            updated_at=updated_at, metadata=metadata, applied=applied if bound_scope == scope else None,
            owner_scope=bound_scope if managed_name is not None and bound_scope != scope else None,
        )
        for (experiment_id, public_model_id, name, description, status, is_archived, started_at, ended_at,
             updated_at, managed_name, metadata, bound_scope, applied) in conn.execute(EXPERIMENTS_QUERY).all()
    )
    return ActualState(experiments, membership, membership_ok, membership_read)


def routed_membership(conn: Connection) -> tuple[str, ...]:
    """The membership key's value as PostgreSQL says it should be (docs/design.md#redis-keys)."""
    query = select(E.c.public_model_id).where(E.c.status.in_(("active", "paused"))).distinct()
    # Sorted by code point in Python, not by the database collation, so every region agrees.
    return membership_order(conn.execute(query).scalars())
