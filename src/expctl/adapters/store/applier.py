"""Executes a plan's changes inside the caller's transaction, in an order that keeps every
constraint true at every step (docs/design.md#applying-a-plan):

The applier reads only the plan: each change carries what it writes (the variant's row id, the
new version's upstream and secret reference), each experiment its row id and the status it had
when planned; the lifecycle table says which transitions set `started_at` / `ended_at`. Steps:

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
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
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

from expctl.adapters.crypto import encrypt_api_key
from expctl.adapters.secrets import SecretResolver
from expctl.adapters.store.tables import expctl_binding, model_experiment, model_experiment_variant
from expctl.adapters.store.tables import model_experiment_variant_version as versions_table
from expctl.core.errors import ConfigError, ConflictError, SecretError
from expctl.core.lifecycle import LEAVING_ROUTING, transition_rule
from expctl.core.plan import Change, ChangeKind, ExperimentPlan, NewVersion, Plan
from expctl.core.state import canonical_json

E, V = model_experiment, model_experiment_variant
VERSION_CREATED_BY = "expctl"


@dataclass
class _Batch:
    """Rows to write, grouped by statement, filled by walking the plan's changes once."""

    leave_routing: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    delete_drafts: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    field_updates: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    new_experiments: list[dict[str, Any]] = field(default_factory=list)
    new_bindings: list[dict[str, Any]] = field(default_factory=list)
    # (manifest name, record) of what is applied, for bindings that exist already (docs/design.md#drift)
    applied_records: list[dict[str, Any]] = field(default_factory=list)
    renames: list[dict[str, Any]] = field(default_factory=list)
    removed_variants: list[str] = field(default_factory=list)
    new_variants: list[dict[str, Any]] = field(default_factory=list)
    reweights: list[dict[str, Any]] = field(default_factory=list)
    # variant id -> (what the run reports if its secret is missing, the version to write)
    new_versions: dict[str, tuple[str, NewVersion]] = field(default_factory=dict)
    activations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class ApplyContext:
    resolver: SecretResolver
    byok_key: bytes | None
    actor: str | None


def new_id() -> str:
    return str(uuid.uuid4())


def _secret(ctx: ApplyContext, who: str, version: NewVersion) -> tuple[bytes, str]:
    """The BYOK key and the variant's secret, or why a new version cannot be written."""
    if ctx.byok_key is None:
        raise ConfigError("BYOK_ENCRYPTION_KEY is required to write api keys (new variants, hot-swaps, rotations)")
    secret = ctx.resolver.resolve(version.secret)
    if secret is None:
        raise SecretError(f"secret {version.secret.describe()} for {who} is not available: "
                          "set it (environment variable or file) and re-run")
    return ctx.byok_key, secret


def version_rows(ctx: ApplyContext, versions: Mapping[str, tuple[str, NewVersion]]) -> list[dict[str, Any]]:
    """The rows of new versions, keys encrypted with fresh nonces; JSON columns as text, as COPY takes them."""
    created_by = ctx.actor or VERSION_CREATED_BY
    return [{"id": new_id(), "variant_id": variant_id, "upstream": canonical_json(version.upstream),
             "encrypted_api_key": canonical_json(encrypt_api_key(*_secret(ctx, who, version))),
             "created_by": created_by}
            for variant_id, (who, version) in versions.items()]


_FIELD_COLUMNS = {"display_name": "name", "description": "description", "public_model_id": "public_model_id",
                  "archived": "is_archived", "metadata": "metadata"}


@dataclass(frozen=True)
class _Target:
    """The experiment a change belongs to, as apply knows it: its row id (new for a create), its
    manifest name, and the status its field updates expect."""

    id: str
    name: str
    expected_status: str
    applied: str | None = None  # the record of what is applied, as JSON text, when it is written


def _create(batch: _Batch, target: _Target, change: Change) -> None:
    after = change.after
    batch.new_experiments.append({
        "id": target.id, "public_model_id": after["public_model_id"], "name": after["display_name"],
        "description": after["description"], "status": after["status"], "is_archived": after["archived"],
        # Text, as COPY takes a jsonb column; None (no metadata, or profile 2026-05) is SQL NULL.
        "metadata": None if after.get("metadata") is None else canonical_json(after["metadata"]),
    })
    _bind(batch, target)


def _bind(batch: _Batch, target: _Target) -> None:
    batch.new_bindings.append({"name": target.name, "experiment_id": target.id, "applied": target.applied})


def _transition(batch: _Batch, target: _Target, change: Change) -> None:
    if change.after in LEAVING_ROUTING:
        batch.leave_routing[(str(change.before), str(change.after))].append(target.id)
    else:
        batch.activations[str(change.before)].append(target.id)


def _add_variant(batch: _Batch, target: _Target, change: Change) -> None:
    variant_id = new_id()
    batch.new_variants.append({"id": variant_id, "experiment_id": target.id, "label": change.variant,
                               "weight": change.after["weight"]})
    _new_version(batch, target, change, variant_id)


def _new_version(batch: _Batch, target: _Target, change: Change, variant_id: str | None = None) -> None:
    """One version per variant, even when a hot-swap and a rotation both ask for it."""
    variant_id = variant_id or change.row_id
    assert variant_id is not None, "a version change carries its variant's row id"
    assert change.version is not None, "a version change carries its new version"
    batch.new_versions[variant_id] = (f"{target.name}/{change.variant}", change.version)


# What each kind of change adds to the batch; field updates are gathered per experiment instead.
_COLLECT: dict[ChangeKind, Callable[[_Batch, _Target, Change], None]] = {
    ChangeKind.CREATE_EXPERIMENT: _create,
    ChangeKind.ADOPT_EXPERIMENT: lambda b, t, c: _bind(b, t),
    ChangeKind.TRANSITION: _transition,
    ChangeKind.DELETE_EXPERIMENT: lambda b, t, c: b.delete_drafts.append(t.id),
    ChangeKind.RELEASE: lambda b, t, c: b.releases.append(t.name),
    ChangeKind.RENAME_VARIANT: lambda b, t, c: b.renames.append({"_id": c.row_id, "label": c.after}),
    ChangeKind.REWEIGHT_VARIANT: lambda b, t, c: b.reweights.append({"_id": c.row_id, "weight": c.after}),
    ChangeKind.REMOVE_VARIANT: lambda b, t, c: b.removed_variants.append(str(c.row_id)),
    ChangeKind.ADD_VARIANT: _add_variant,
    ChangeKind.HOT_SWAP: _new_version,
    ChangeKind.ROTATE_KEY: _new_version,
}


def _expected_status(plan: ExperimentPlan) -> str:
    """The status an experiment's field updates find: the one it leaves routing to, if it does."""
    for change in plan.applied_changes:
        if change.kind is ChangeKind.TRANSITION and change.after in LEAVING_ROUTING:
            return str(change.after)
    return plan.status_before or "draft"


def collect(plan: Plan) -> _Batch:
    """Walks the (fully allowed) plan's changes once and groups their writes by statement."""
    batch = _Batch()
    for experiment in plan.experiments:
        changes = experiment.applied_changes
        applied = None if experiment.applied is None else canonical_json(experiment.applied)
        binds = any(c.kind in (ChangeKind.CREATE_EXPERIMENT, ChangeKind.ADOPT_EXPERIMENT) for c in changes)
        if experiment.applied is not None and not binds:
            batch.applied_records.append({"_name": experiment.name, "applied": experiment.applied})
        if not changes:
            continue
        target = _Target(experiment.experiment_id or new_id(), experiment.name, _expected_status(experiment), applied)
        fields: dict[str, Any] = {}
        for change in changes:
            if change.kind in (ChangeKind.UPDATE_FIELD, ChangeKind.ARCHIVE, ChangeKind.UNARCHIVE):
                fields[_FIELD_COLUMNS[str(change.field)]] = change.after
            else:
                _COLLECT[change.kind](batch, target, change)
        if fields:
            batch.field_updates[tuple(sorted(fields))].append(
                {"_id": target.id, "_status": target.expected_status, **fields})
    return batch


def _lock_touched(conn: Connection, plan: Plan) -> None:
    """Locks the existing experiment rows the plan changes; aborts if one's status moved since the read."""
    expected = {e.experiment_id: e.status_before for e in plan.experiments
                if e.applied_changes and e.experiment_id is not None}
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


def _leave_routing(conn: Connection, batch: _Batch, scope: str) -> None:
    for (before, after), ids in sorted(batch.leave_routing.items()):
        values: dict[str, Any] = {"status": after, "updated_at": func.now()}
        if transition_rule(before, after).sets_ended_at:
            values["ended_at"] = func.now()
        stmt = update(E).where(_ids(E.c.id, ids), E.c.status == before).values(**values)
        result = conn.execute(stmt)
        _expect_rows(result.rowcount, len(ids), f"{before} -> {after}")
    if batch.delete_drafts:
        result = conn.execute(delete(E).where(_ids(E.c.id, batch.delete_drafts), E.c.status == "draft"))
        _expect_rows(result.rowcount, len(batch.delete_drafts), "delete drafts")
    if batch.releases:
        conn.execute(delete(expctl_binding).where(expctl_binding.c.scope == scope,
                                                  _ids(expctl_binding.c.name, batch.releases)))


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


def _structure(conn: Connection, batch: _Batch, versions: Future[list[dict[str, Any]]], scope: str) -> None:
    if batch.new_experiments:
        _insert(conn, E, batch.new_experiments)
    if batch.new_bindings:
        _insert(conn, expctl_binding, batch.new_bindings, {"scope": scope})
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
        if transition_rule(before, "active").sets_started_at:
            values["started_at"] = func.coalesce(E.c.started_at, func.now())
        result = conn.execute(update(E).where(_ids(E.c.id, ids), E.c.status == before).values(**values))
        _expect_rows(result.rowcount, len(ids), f"{before} -> active")


def execute(conn: Connection, plan: Plan, ctx: ApplyContext) -> None:
    """Runs every step inside the caller's transaction; the caller commits or rolls back."""
    batch = collect(plan)
    if batch.new_versions:
        _secret(ctx, *next(iter(batch.new_versions.values())))  # no BYOK key: stop before any write
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="expctl-versions") as pool:
        # Encrypting keys and building version rows is pure work on data nothing else changes: a
        # thread does it while this one waits for PostgreSQL to take the earlier steps' rows.
        versions = pool.submit(version_rows, ctx, batch.new_versions)
        _lock_touched(conn, plan)
        _leave_routing(conn, batch, plan.scope)
        _fields(conn, batch)
        _structure(conn, batch, versions, plan.scope)
    _activate(conn, batch)
    _record_applied(conn, batch, plan.scope)


def _record_applied(conn: Connection, batch: _Batch, scope: str) -> None:
    """What this run applied, for the bindings that already existed: one statement."""
    if not batch.applied_records:
        return
    B = expctl_binding
    source = _rows({"_name": B.c.name, "applied": B.c.applied}, batch.applied_records)
    conn.execute(update(B).where(B.c.scope == scope, B.c.name == source.c["_name"])
                 .values(applied=source.c["applied"]))


def changed_public_ids(plan: Plan) -> Sequence[str]:
    """Public ids whose per-id routing cache must be dropped: both sides of a public id move."""
    ids = set(plan.routing_public_ids)
    for experiment in plan.experiments:
        for change in experiment.changes:
            if change.field == "public_model_id" and change.allowed and not change.held:
                ids.update((str(change.before), str(change.after)))
    return sorted(ids)
