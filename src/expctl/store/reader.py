"""Reads the actual state: all experiments, variants and current versions in three queries.

The number of queries does not depend on how many experiments exist (DESIGN §6). A variant's
current version is its newest row with effective_at <= now(), ties broken by the greater id.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import distinct_on

from expctl.state import ActualExperiment, ActualState, ActualVariant, ActualVersion
from expctl.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)

E, V, VV, B = model_experiment, model_experiment_variant, model_experiment_variant_version, expctl_binding

EXPERIMENTS_QUERY = select(
    E.c.id, E.c.public_model_id, E.c.name, E.c.description, E.c.status, E.c.is_archived,
    E.c.started_at, E.c.ended_at, E.c.updated_at, B.c.name.label("managed_name"),
).select_from(E.outerjoin(B, B.c.experiment_id == E.c.id)).order_by(E.c.id)

VARIANTS_QUERY = select(V.c.id, V.c.experiment_id, V.c.label, V.c.weight).order_by(V.c.experiment_id, V.c.id)

CURRENT_VERSIONS_QUERY = (
    select(VV.c.id, VV.c.variant_id, VV.c.upstream, VV.c.encrypted_api_key, VV.c.effective_at)
    .where(VV.c.effective_at <= func.now())
    .ext(distinct_on(VV.c.variant_id))
    .order_by(VV.c.variant_id, VV.c.effective_at.desc(), VV.c.id.desc())
)


def read_state(
    conn: Connection, membership: tuple[str, ...] | None = None, membership_ok: bool = True,
    membership_read: bool = False,
) -> ActualState:
    versions = {
        row.variant_id: ActualVersion(row.id, row.upstream, row.encrypted_api_key, row.effective_at)
        for row in conn.execute(CURRENT_VERSIONS_QUERY)
    }
    variants: dict[str, list[ActualVariant]] = defaultdict(list)
    for row in conn.execute(VARIANTS_QUERY):
        variants[row.experiment_id].append(ActualVariant(row.id, row.label, row.weight, versions.get(row.id)))
    experiments = tuple(_experiment(row, variants.get(row.id, [])) for row in conn.execute(EXPERIMENTS_QUERY))
    return ActualState(experiments, membership, membership_ok, membership_read)


def _experiment(row: Any, variants: list[ActualVariant]) -> ActualExperiment:
    return ActualExperiment(
        id=row.id, public_model_id=row.public_model_id, name=row.name, description=row.description,
        status=row.status, is_archived=row.is_archived, variants=tuple(variants),
        managed_name=row.managed_name, started_at=row.started_at, ended_at=row.ended_at, updated_at=row.updated_at,
    )


def routed_membership(conn: Connection) -> tuple[str, ...]:
    """The membership key's value as PostgreSQL says it should be (DESIGN §1.5)."""
    query = select(E.c.public_model_id).where(E.c.status.in_(("active", "paused"))).distinct()
    # Sorted by code point in Python, not by the database collation, so every region agrees.
    return tuple(sorted(conn.execute(query).scalars()))
