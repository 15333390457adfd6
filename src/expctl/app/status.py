"""Use cases over observed traffic: the `expctl status` report, and the one-line status a markdown
plan shows for each routed experiment it changes (docs/design.md#observed-traffic).

Both read in one READ ONLY transaction with a constant number of statements: the schema and
table checks, the catalog, and one aggregate over the request rows of every chosen version.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from expctl.adapters.store.db import read_only, require_schema
from expctl.adapters.store.traffic import check_tables, read_catalog, read_traffic
from expctl.app.settings import Settings
from expctl.core.errors import ExpctlError
from expctl.core.plan import ChangeKind, Plan
from expctl.core.render.status_text import observed_line
from expctl.core.status import ROUTED, Experiment, When, select_experiments, targets, window_of
from expctl.core.status_report import StatusReport, build_report

# Changes to a routed experiment after which a reviewer wants to know how it is doing now.
_OBSERVED_KINDS = frozenset({ChangeKind.HOT_SWAP, ChangeKind.ROTATE_KEY, ChangeKind.TRANSITION})


def _report(conn: Connection, settings: Settings, selectors: Sequence[str], include_all: bool,
            since: When | None, until: When | None, only_ids: Collection[str] | None = None) -> StatusReport:
    now = check_tables(conn)
    catalog = read_catalog(conn, now, only_ids, settings.plan_scope.scope)
    chosen: list[Experiment] = (
        select_experiments(catalog, selectors, include_all) if only_ids is None else list(catalog))
    windows = {e.id: window_of(e, since, until, now) for e in chosen}
    traffic = read_traffic(conn, targets(chosen, windows))
    return build_report(chosen, windows, traffic, settings.gateway_profile.name)


def status_report(settings: Settings, selectors: Sequence[str] = (), include_all: bool = False,
                  since: When | None = None, until: When | None = None) -> StatusReport:
    """Observed traffic of the chosen experiments (see `select_experiments`); TrafficUnavailable
    when the request tables are missing."""
    with read_only(settings.database_url) as conn:
        require_schema(conn)
        return _report(conn, settings, selectors, include_all, since, until)


def observed_for_plan(settings: Settings, plan: Plan) -> Mapping[str, str]:
    """Experiment name -> one-line observed status, for the routed experiments whose changes this
    plan includes a hot-swap, key rotation or transition of. Never needed for a plan: anything
    that goes wrong (no tables, no permission, no connection) leaves the plan without the lines."""
    names = {
        e.experiment_id: e.name for e in plan.experiments
        if e.experiment_id and e.status_before in ROUTED and any(c.kind in _OBSERVED_KINDS for c in e.changes)
    }
    if not names:
        return {}
    try:
        with read_only(settings.database_url) as conn:
            report = _report(conn, settings, (), True, None, None, only_ids=set(names))
    except (ExpctlError, SQLAlchemyError):
        return {}
    return {names[e.experiment.id]: observed_line(e.to_record()) for e in report.experiments}
