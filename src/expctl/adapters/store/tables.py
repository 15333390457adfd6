"""SQLAlchemy Core definitions of the gateway's tables (docs/design.md#gateway-tables, exactly) and expctl's own.

Names of tables, constraints and indexes match the gateway's migrations, because the gateway and
its admin UI share these tables with expctl; no constraint is added beyond the contract's (length
limits are enforced by manifest validation). expctl's own tables are prefixed `expctl_`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


model_experiment = Table(
    "model_experiment",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("public_model_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("status", Text, nullable=False, server_default=text("'draft'")),
    Column("is_archived", Boolean, nullable=False, server_default=text("false")),
    Column("created_by_user_id", Text, nullable=True),
    *_timestamps(),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("metadata", JSONB, nullable=True),
    CheckConstraint("status IN ('draft','active','paused','completed')", name="model_experiment_status_valid"),
    CheckConstraint("status <> 'active' OR is_archived = false", name="model_experiment_active_not_archived"),
)
Index(
    "UQ_model_experiment_public_model_id_routing",
    model_experiment.c.public_model_id,
    unique=True,
    postgresql_where=text("status IN ('active','paused')"),
)
Index("IDX_model_experiment_status", model_experiment.c.status)

model_experiment_variant = Table(
    "model_experiment_variant",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("experiment_id", UUID(as_uuid=False), ForeignKey("model_experiment.id", ondelete="CASCADE"),
           nullable=False),
    Column("label", Text, nullable=False),
    Column("weight", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("experiment_id", "label", name="UQ_model_experiment_variant_experiment_label"),
    CheckConstraint("weight > 0", name="model_experiment_variant_weight_positive"),
)
Index("IDX_model_experiment_variant_experiment_id", model_experiment_variant.c.experiment_id)

model_experiment_variant_version = Table(
    "model_experiment_variant_version",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("variant_id", UUID(as_uuid=False), ForeignKey("model_experiment_variant.id", ondelete="CASCADE"),
           nullable=False),
    Column("upstream", JSONB, nullable=False),
    Column("encrypted_api_key", JSONB, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index(
    "IDX_model_experiment_variant_version_variant_effective",
    model_experiment_variant_version.c.variant_id,
    model_experiment_variant_version.c.effective_at.desc().nulls_last(),
)

GATEWAY_TABLES = (model_experiment, model_experiment_variant, model_experiment_variant_version)

# Which manifest `name` of which scope (a project or environment, docs/design.md#scopes) owns which
# experiment, and what expctl last applied to it (docs/design.md#drift). Deleting the experiment row
# (e.g. in the admin UI) drops the binding too, so a manifest never points at a row that no longer exists.
expctl_binding = Table(
    "expctl_binding",
    metadata,
    Column("scope", Text, primary_key=True, server_default=text("'default'")),
    Column("name", Text, primary_key=True),
    Column("experiment_id", UUID(as_uuid=False), ForeignKey("model_experiment.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("bound_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("applied", JSONB, nullable=True),
)

# One row per apply/reconcile/import run: who, which revision, which plan, what happened.
expctl_run = Table(
    "expctl_run",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("command", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Column("git_revision", Text, nullable=True),
    Column("plan_id", Text, nullable=True),
    Column("outcome", Text, nullable=False),
    Column("summary", JSONB, nullable=True),
)

# Public ids whose per-id routing cache must still be dropped in Redis. Filled in the apply
# transaction, drained once every Redis target is refreshed: a re-run after a Redis failure
# (exit 3) therefore still drops the keys the failed run could not.
expctl_cache_outbox = Table(
    "expctl_cache_outbox",
    metadata,
    Column("public_model_id", Text, primary_key=True),
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

EXPCTL_TABLES = (expctl_binding, expctl_run, expctl_cache_outbox)
