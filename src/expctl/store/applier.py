"""Applies a plan's allowed changes inside the caller's transaction, in an order that keeps every
constraint true at every step (DESIGN §5):

1. leave routing: complete, pause, delete drafts, release bindings;
2. experiment fields: name, description, public_model_id, unarchive, archive;
3. structure: create experiments, rename/remove/add/reweight variants, then insert versions;
4. activations (draft → active, paused → active), last, when the public id is free.

Every write is one set-based statement per step, whatever the number of rows: new rows go in by
one COPY per table, updates take their batch as one JSON parameter that `json_to_recordset(...)`
turns back into rows (`UPDATE … FROM`), a set of ids as one array (`= ANY(…)`), so an apply
creating 10,000 experiments makes as many round trips as one creating a single experiment. Experiment updates
carry `WHERE id = … AND status = <expected>` and the apply aborts when a row changed underneath.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql as psql
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    column,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.selectable import TableValuedAlias

from expctl.crypto import encrypt_api_key, random_bytes
from expctl.errors import ConfigError, ConflictError, SecretError
from expctl.plan import ChangeKind, ExperimentPlan, Plan
from expctl.planner import match_variants
from expctl.secrets import SecretResolver
from expctl.state import ActualExperiment, ActualState, DesiredExperiment, DesiredVariant, canonical_json
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
    # (experiment name, variant, variant id) of each version to write: `version_rows` builds them.
    new_versions: list[tuple[str, DesiredVariant, str]] = field(default_factory=list)
    activations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class ApplyContext:
    desired: Mapping[str, DesiredExperiment]
    state: ActualState
    resolver: SecretResolver
    byok_key: bytes | None
    actor: str | None


# The variant digit of an RFC 4122 UUID is 8, 9, a or b: the top two bits of its nibble are 10.
_VARIANT_DIGIT = {f"{n:x}": f"{8 + (n & 3):x}" for n in range(16)}


def new_id() -> str:
    """A random UUID (version 4) as text, the same as `str(uuid.uuid4())` without building the
    UUID object: an apply creating 10,000 experiments needs 50,000 of them."""
    h = random_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:]}"


def _secret(ctx: ApplyContext, experiment: str, variant: DesiredVariant) -> tuple[bytes, str]:
    """The BYOK key and the variant's secret, or why a new version cannot be written."""
    if ctx.byok_key is None:
        raise ConfigError("BYOK_ENCRYPTION_KEY is required to write api keys (new variants, hot-swaps, rotations)")
    secret = ctx.resolver.resolve(variant.api_key)
    if secret is None:
        raise SecretError(
            f"secret {variant.api_key.describe()} for {experiment}/{variant.label} is not available: "
            "set it (environment variable or file) and re-run"
        )
    return ctx.byok_key, secret


def _new_version(batch: _Batch, ctx: ApplyContext, experiment: str, variant: DesiredVariant, variant_id: str) -> None:
    _secret(ctx, experiment, variant)  # a missing key or secret stops the apply before any write
    batch.new_versions.append((experiment, variant, variant_id))


def version_rows(ctx: ApplyContext, versions: Sequence[tuple[str, DesiredVariant, str]]) -> list[dict[str, Any]]:
    """The rows of new versions, keys encrypted with fresh nonces; JSON columns as text, as COPY takes them."""
    created_by = ctx.actor or VERSION_CREATED_BY
    rows = []
    for experiment, variant, variant_id in versions:
        encrypted = encrypt_api_key(*_secret(ctx, experiment, variant))
        rows.append({"id": new_id(), "variant_id": variant_id, "upstream": canonical_json(variant.upstream),
                     "encrypted_api_key": canonical_json(encrypted), "created_by": created_by})
    return rows


def _collect_create(batch: _Batch, ctx: ApplyContext, d: DesiredExperiment) -> None:
    experiment_id = new_id()
    batch.new_experiments.append({
        "id": experiment_id, "public_model_id": d.public_model_id, "name": d.display_name,
        "description": d.description, "status": "draft", "is_archived": d.archived,
    })
    batch.new_bindings.append({"name": d.name, "experiment_id": experiment_id})
    for variant in d.variants:
        variant_id = new_id()
        batch.new_variants.append({"id": variant_id, "experiment_id": experiment_id, "label": variant.label,
                                   "weight": variant.weight})
        _new_version(batch, ctx, d.name, variant, variant_id)
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
            variant_id = new_id()
            batch.new_variants.append({"id": variant_id, "experiment_id": a.id, "label": variant.label,
                                       "weight": variant.weight})
            _new_version(batch, ctx, d.name, variant, variant_id)
            continue
        if row.label != variant.label:
            batch.renames.append({"_id": row.id, "label": variant.label})
        if row.weight != variant.weight:
            batch.reweights.append({"_id": row.id, "weight": variant.weight})
        if variant.label in swapped:
            _new_version(batch, ctx, d.name, variant, row.id)


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


def _lock_touched(conn: Connection, plan: Plan, ctx: ApplyContext) -> None:
    """Locks the existing experiment rows the plan changes; aborts if one's status moved since the read."""
    bound = ctx.state.by_managed_name()
    expected = {a.id: a.status for e in plan.experiments if e.changes and (a := bound.get(e.name)) is not None}
    if not expected:
        return
    query = select(E.c.id, E.c.status).where(_ids(E.c.id, sorted(expected))).order_by(E.c.id).with_for_update()
    current = {row.id: row.status for row in conn.execute(query)}
    _expect_rows(sum(current.get(i) == status for i, status in expected.items()), len(expected), "experiment status")


def _expect_rows(result_rowcount: int, expected: int, what: str) -> None:
    if result_rowcount != expected:
        raise ConflictError(
            f"{what}: {expected - result_rowcount} row(s) changed underneath this run (e.g. in the admin UI); "
            "nothing was applied — re-run to plan against the new state"
        )


def _array(column: Column[Any], values: Sequence[Any]) -> ColumnElement[Any]:
    """One bound parameter holding a list of values, cast to the column's array type."""
    return cast(bindparam(None, list(values), type_=ARRAY(Text())), ARRAY(column.type))


def _ids(column: Column[Any], ids: Sequence[str]) -> ColumnElement[bool]:
    """`column = ANY(<ids as one array>)`."""
    return column == any_(_array(column, ids))


def _rows(columns: Mapping[str, Column[Any]], rows: Sequence[Mapping[str, Any]]) -> TableValuedAlias:
    """`json_to_recordset(<the batch as one JSON parameter>) AS anon(name type, …)`: the batch as a
    relation whose columns have the names of `columns` and the types of those table columns.

    One JSON text is the cheapest way to ship thousands of rows in one statement: it is written by
    orjson (`canonical_json`) and parsed by the server, while array parameters are escaped value by
    value.
    """
    payload = canonical_json([{name: row[name] for name in columns} for row in rows])
    source = func.json_to_recordset(cast(bindparam(None, payload, type_=Text()), JSON()))
    return source.table_valued(*(column(name, col.type) for name, col in columns.items())).render_derived(
        with_types=True)


def _insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
            constants: Mapping[str, Any] | None = None) -> None:
    """Every row (plus the `constants` columns) in one `COPY … FROM STDIN`, PostgreSQL's bulk load:
    half the time of an `INSERT … SELECT` over the same rows, and still one statement per table.

    COPY is psycopg's, on the transaction's own connection; its errors are turned into SQLAlchemy's
    (an integrity error stays an `IntegrityError` naming its constraint), like any statement's.
    """
    columns = list(rows[0])
    names = [*columns, *(constants or {})]
    extra = list((constants or {}).values())
    values = operator.itemgetter(*columns)
    statement = psql.SQL("COPY {} ({}) FROM STDIN").format(
        psql.Identifier(table.name), psql.SQL(", ").join(map(psql.Identifier, names)))
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            write = copy.write_row
            if len(columns) == 1:
                for row in rows:
                    write((values(row), *extra))
            elif extra:
                for row in rows:
                    write((*values(row), *extra))
            else:
                for row in map(values, rows):
                    write(row)
    except psycopg.Error as err:
        raise DBAPIError.instance(statement.as_string(raw), None, err, psycopg.Error) from err


def _leave_routing(conn: Connection, batch: _Batch) -> None:
    for (before, after), ids in sorted(batch.leave_routing.items()):
        values: dict[str, Any] = {"status": after, "updated_at": func.now()}
        if after == "completed":
            values["ended_at"] = func.now()
        stmt = update(E).where(_ids(E.c.id, ids), E.c.status == before).values(**values)
        result = conn.execute(stmt)
        _expect_rows(result.rowcount, len(ids), f"{before} -> {after}")
    if batch.delete_drafts:
        result = conn.execute(delete(E).where(_ids(E.c.id, batch.delete_drafts), E.c.status == "draft"))
        _expect_rows(result.rowcount, len(batch.delete_drafts), "delete drafts")
    if batch.releases:
        conn.execute(delete(expctl_binding).where(_ids(expctl_binding.c.name, batch.releases)))


def _fields(conn: Connection, batch: _Batch) -> None:
    for columns, rows in sorted(batch.field_updates.items()):
        source = _rows({"_id": E.c.id, "_status": E.c.status, **{c: E.c[c] for c in columns}}, rows)
        stmt = (update(E).where(E.c.id == source.c["_id"], E.c.status == source.c["_status"])
                .values(updated_at=func.now(), **{c: source.c[c] for c in columns}))
        result = conn.execute(stmt)
        _expect_rows(result.rowcount, len(rows), "field update")


def _update_variants(conn: Connection, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    source = _rows({"_id": V.c.id, name: V.c[name]}, rows)
    conn.execute(update(V).where(V.c.id == source.c["_id"]).values(**{name: source.c[name]}, updated_at=func.now()))


def _structure(conn: Connection, batch: _Batch, versions: Future[list[dict[str, Any]]]) -> None:
    if batch.new_experiments:
        _insert(conn, E, batch.new_experiments)
        _insert(conn, expctl_binding, batch.new_bindings)
    if batch.renames:
        # Two steps, so that swapping two labels never trips the (experiment_id, label) unique constraint.
        temp = [{"_id": r["_id"], "label": f"~expctl-rename-{r['_id']}"} for r in batch.renames]
        _update_variants(conn, "label", temp)
        _update_variants(conn, "label", batch.renames)
    if batch.removed_variants:
        conn.execute(delete(V).where(_ids(V.c.id, batch.removed_variants)))
    if batch.new_variants:
        _insert(conn, V, batch.new_variants)
    if batch.reweights:
        _update_variants(conn, "weight", batch.reweights)
    if batch.new_versions:
        # clock_timestamp(), not now(): a run that waited for the lock must still write the newest version.
        now = conn.execute(select(func.clock_timestamp())).scalar_one()
        _insert(conn, versions_table, versions.result(), {"effective_at": now})


def _activate(conn: Connection, batch: _Batch) -> None:
    for before, ids in sorted(batch.activations.items()):
        values: dict[str, Any] = {"status": "active", "updated_at": func.now()}
        if before == "draft":
            values["started_at"] = func.coalesce(E.c.started_at, func.now())
        result = conn.execute(update(E).where(_ids(E.c.id, ids), E.c.status == before).values(**values))
        _expect_rows(result.rowcount, len(ids), f"{before} -> active")


def execute(conn: Connection, plan: Plan, ctx: ApplyContext) -> None:
    """Runs every step inside the caller's transaction; the caller commits or rolls back."""
    batch = collect(plan, ctx)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="expctl-versions") as pool:
        # Encrypting keys and building version rows is pure work on data nothing else changes: a
        # thread does it while this one waits for PostgreSQL to take the earlier steps' rows.
        versions = pool.submit(version_rows, ctx, batch.new_versions)
        _lock_touched(conn, plan, ctx)
        _leave_routing(conn, batch)
        _fields(conn, batch)
        _structure(conn, batch, versions)
    _activate(conn, batch)


def changed_public_ids(plan: Plan) -> Sequence[str]:
    """Public ids whose per-id routing cache must be dropped: both sides of a public id move."""
    ids = set(plan.routing_public_ids)
    for experiment in plan.experiments:
        for change in experiment.changes:
            if change.field == "public_model_id" and change.allowed:
                ids.update((str(change.before), str(change.after)))
    return sorted(ids)
