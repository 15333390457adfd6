"""Reads observed traffic: the gateway's request and usage rows, aggregated in PostgreSQL.

expctl never writes `model_experiment_request` or `microdollar_usage` and `db init` does not
create them (docs/design.md#observed-traffic); only the columns read are declared here, in a
MetaData of their own that nothing creates. Every read is set-based with a constant number of
round trips: one for the catalog (experiments, slots, every version), one for the counts of all
versions at once. The counts query drives from the list of versions and their windows, so each
version is one range scan of the (variant_version_id, created_at) index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from expctl.adapters.store.tables import (
    expctl_binding,
    model_experiment,
    model_experiment_variant,
    model_experiment_variant_version,
)
from expctl.core.errors import TrafficUnavailable
from expctl.core.plan import DEFAULT_SCOPE
from expctl.core.status import Counts, Experiment, Slot, Target, Traffic, VersionRow, versions_of

observed_metadata = MetaData()  # never created by expctl: the gateway owns these tables

model_experiment_request = Table(
    "model_experiment_request", observed_metadata,
    Column("usage_id", UUID(as_uuid=False), nullable=False),
    Column("variant_version_id", UUID(as_uuid=False), nullable=False),
    Column("allocation_subject", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

microdollar_usage = Table(
    "microdollar_usage", observed_metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("kilo_user_id", Text),
    Column("cost", BigInteger),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cache_write_tokens", BigInteger),
    Column("cache_hit_tokens", BigInteger),
    Column("has_error", Boolean),
    Column("created_at", DateTime(timezone=True)),
)

WORK_MEM = "64MB"
OBSERVED_TABLES = (model_experiment_request.name, microdollar_usage.name)
E, V, VV, B = model_experiment, model_experiment_variant, model_experiment_variant_version, expctl_binding
R, U = model_experiment_request, microdollar_usage


def check_tables(conn: Connection) -> datetime:
    """The database's clock, once the observed-traffic tables are known to exist (else TrafficUnavailable)."""
    row = conn.execute(select(
        func.statement_timestamp(), *(func.to_regclass(name).is_(None) for name in OBSERVED_TABLES))).one()
    missing = [name for name, absent in zip(OBSERVED_TABLES, row[1:], strict=True) if absent]
    if missing:
        raise TrafficUnavailable(
            f"no observed traffic here: table(s) {', '.join(missing)} missing (the gateway of profile 2026-11 "
            "records requests; a 2026-05 gateway or a fresh database has none)")
    now: datetime = row[0]
    return now


CATALOG_QUERY = (
    select(cast(E.c.id, Text), E.c.name, E.c.public_model_id, E.c.status, E.c.is_archived, B.c.name,
           E.c.started_at, E.c.ended_at, E.c.updated_at, cast(V.c.id, Text), V.c.label, V.c.weight,
           cast(VV.c.id, Text), VV.c.effective_at)
    # Managed means bound in this run's scope (docs/design.md#scopes): another scope's rows read as unmanaged.
    .select_from(E.outerjoin(B, (B.c.experiment_id == E.c.id) & (B.c.scope == bindparam("scope")))
                 .outerjoin(V, V.c.experiment_id == E.c.id)
                 .outerjoin(VV, VV.c.variant_id == V.c.id))
    .order_by(E.c.id, V.c.id, VV.c.effective_at, VV.c.id)
)


def read_catalog(conn: Connection, now: datetime, only_ids: Collection[str] | None = None,
                 scope: str = DEFAULT_SCOPE) -> list[Experiment]:
    """Every experiment (or those of `only_ids`) with its slots (ascending id) and all their
    versions, managed when bound in `scope`; never a key or an upstream."""
    query = CATALOG_QUERY if only_ids is None else CATALOG_QUERY.where(E.c.id.in_(sorted(only_ids)))
    heads: dict[str, tuple[Any, ...]] = {}
    slots: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    versions: dict[str, list[VersionRow]] = defaultdict(list)
    for row in conn.execute(query, {"scope": scope}).all():
        experiment_id, variant_id, version_id = row[0], row[9], row[12]
        heads.setdefault(experiment_id, tuple(row[:9]))
        if variant_id is not None:
            slots[experiment_id][variant_id] = (row[10], row[11])
        if version_id is not None:
            versions[variant_id].append(VersionRow(version_id, variant_id, row[13]))
    return [
        Experiment(
            id=head[0], title=head[1], public_model_id=head[2], status=head[3], archived=head[4], managed_name=head[5],
            started_at=head[6], ended_at=head[7], updated_at=head[8],
            slots=tuple(Slot(slot_id, label, weight, versions_of(versions[slot_id], now))
                        for slot_id, (label, weight) in slots[head[0]].items()),
        )
        for head in heads.values()
    ]


def _targets_table() -> Any:
    """The versions to count and their windows, as one set: seven array parameters, unnested."""
    stamp = ARRAY(DateTime(timezone=True))
    return func.unnest(
        bindparam("version_ids", type_=ARRAY(UUID(as_uuid=False))), bindparam("variant_ids", type_=ARRAY(Text)),
        bindparam("experiment_ids", type_=ARRAY(Text)), bindparam("since", type_=stamp),
        bindparam("until", type_=stamp), bindparam("superseded", type_=stamp), bindparam("stopped", type_=stamp),
    ).table_valued(
        column("version_id", UUID(as_uuid=False)), column("variant_id", Text), column("experiment_id", Text),
        column("since", DateTime(timezone=True)), column("until", DateTime(timezone=True)),
        column("superseded_at", DateTime(timezone=True)), column("stopped_at", DateTime(timezone=True)),
    ).render_derived(name="w")


def _per_user() -> Any:
    """Requests in each version's window grouped by (version, subject, user): the large scan is
    reduced once, and the counts below (and users seen in two slots) are taken from that."""
    w = _targets_table()
    count = func.count()
    per_user = (
        select(
            w.c.experiment_id, w.c.variant_id, w.c.version_id, R.c.allocation_subject.label("subject"),
            U.c.kilo_user_id.label("user_id"), count.label("requests"),
            count.filter(U.c.has_error).label("errors"), func.sum(U.c.cost).label("cost"),
            *(func.sum(U.c[name]).label(name) for name in _TOKENS),
            func.min(R.c.created_at).label("first_at"), func.max(R.c.created_at).label("last_at"),
            count.filter(R.c.created_at >= w.c.superseded_at).label("stale"),
            count.filter(R.c.created_at >= w.c.stopped_at).label("stopped"),
        )
        .select_from(w.join(R, and_(R.c.variant_version_id == w.c.version_id, R.c.created_at >= w.c.since,
                                    R.c.created_at < w.c.until)).join(U, U.c.id == R.c.usage_id))
        .group_by(w.c.experiment_id, w.c.variant_id, w.c.version_id, R.c.allocation_subject, U.c.kilo_user_id)
    ).cte("per_user")
    partition = (per_user.c.experiment_id, per_user.c.subject, per_user.c.user_id)
    return select(
        per_user,
        (func.min(per_user.c.variant_id).over(partition_by=partition)
         != func.max(per_user.c.variant_id).over(partition_by=partition)).label("mixed"),
    ).cte("marked")


_TOKENS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_hit_tokens")


def _counts_query() -> Any:
    m = _per_user()
    is_user = and_(m.c.subject == "user", m.c.user_id.is_not(None))
    total = func.coalesce(func.sum(m.c.requests), 0)
    return select(
        m.c.variant_id, cast(m.c.version_id, Text), func.grouping(m.c.version_id).label("slot_total"),
        total, func.count(m.c.user_id.distinct()).filter(is_user),
        func.coalesce(func.sum(m.c.requests).filter(~is_user), 0), func.sum(m.c.errors), func.sum(m.c.cost),
        *(func.sum(m.c[name]) for name in _TOKENS), func.min(m.c.first_at), func.max(m.c.last_at),
        func.sum(m.c.stale), func.sum(m.c.stopped),
        func.count(m.c.user_id.distinct()).filter(and_(is_user, m.c.mixed)),
    ).group_by(func.grouping_sets(tuple_(m.c.variant_id, m.c.version_id), tuple_(m.c.variant_id)))


COUNTS_QUERY = _counts_query()


def read_traffic(conn: Connection, targets: Sequence[Target]) -> Traffic:
    """The counts of every target version, and of each slot over its versions, in one statement."""
    if not targets:
        return Traffic({}, {})
    params = {
        "version_ids": [t.version_id for t in targets], "variant_ids": [t.variant_id for t in targets],
        "experiment_ids": [t.experiment_id for t in targets], "since": [t.since for t in targets],
        "until": [t.until for t in targets], "superseded": [t.superseded_at for t in targets],
        "stopped": [t.stopped_at for t in targets],
    }
    # For this transaction only: with the default 4 MB, the index bitmaps of a week of one
    # experiment turn lossy and the per-user sort spills to disk (bench/README.md).
    conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    versions: dict[str, Counts] = {}
    slots: dict[str, Counts] = {}
    for row in conn.execute(COUNTS_QUERY, params).all():
        variant_id, version_id, slot_total, *sums = row
        (requests, users, anonymous, errors, cost, input_tokens, output_tokens, cache_write, cache_hit, first_at,
         last_at, stale, stopped, mixed) = sums
        counts = Counts(
            requests=int(requests), users=int(users), anonymous_requests=int(anonymous), errors=int(errors or 0),
            cost_microdollars=int(cost or 0), input_tokens=int(input_tokens or 0),
            output_tokens=int(output_tokens or 0), cache_write_tokens=int(cache_write or 0),
            cache_hit_tokens=int(cache_hit or 0), first_at=first_at, last_at=last_at,
            stale_requests=int(stale or 0), stopped_requests=int(stopped or 0), mixed_users=int(mixed or 0))
        if slot_total:
            slots[variant_id] = counts
        else:
            versions[version_id] = counts
    return Traffic(versions, slots)
