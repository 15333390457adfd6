"""`expctl status` on a real PostgreSQL holding realistic request and usage rows (tests/traffic.py):
every planted condition is reported, in every format (golden outputs), with counts checked against
plain SQL; missing tables, selectors, --exit-code and the number of statements.

Set UPDATE_GOLDEN=1 to rewrite tests/status_golden/ from the current output (then review the diff).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from expctl.adapters.store.db import connect, init_schema
from expctl.cli import run
from expctl.core.render.status_json import load_status_schema
from tests.servers import PostgresEndpoint
from tests.traffic import (
    LATE_REQUESTS,
    SINCE,
    STALE_REQUESTS,
    SWAP_AT,
    UNTIL,
    Seeded,
    create_traffic_tables,
    seed_scenario,
)

GOLDEN = Path(__file__).parent / "status_golden"
WINDOW = ["--since", SINCE.isoformat(), "--until", UNTIL.isoformat()]


@pytest.fixture(scope="module")
def scenario(pg_server: PostgresEndpoint) -> Iterator[tuple[str, Seeded]]:
    """One database with the scenario, shared by the module's tests (they only read it)."""
    name = f"t_status_{uuid.uuid4().hex}"
    url = pg_server.create_database(name)
    with connect(url) as conn, conn.begin():
        init_schema(conn)
        create_traffic_tables(conn)
        seeded = seed_scenario(conn)
    yield url, seeded
    pg_server.drop_database(name)


def status(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(["status", *args, "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status_json(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> dict[str, Any]:
    code, out, err = status(capsys, url, *args, "--format", "json")
    assert code == 0, err
    record: dict[str, Any] = json.loads(out)
    jsonschema.Draft202012Validator(load_status_schema(), format_checker=jsonschema.FormatChecker()).validate(record)
    return record


def by_name(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in record["experiments"]}


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_golden_outputs(repo: Path, scenario: tuple[str, Seeded], capsys: pytest.CaptureFixture[str],
                        fmt: str) -> None:
    code, out, err = status(capsys, scenario[0], "--all", *WINDOW, "--format", fmt)
    assert code == 0 and err == ""
    path = GOLDEN / f"all.{ {'text': 'txt', 'markdown': 'md', 'json': 'json'}[fmt] }"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(out, encoding="utf-8")
    assert out == path.read_text(encoding="utf-8")


def test_every_planted_condition_is_flagged(repo: Path, scenario: tuple[str, Seeded],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url, seeded = scenario
    experiments = by_name(status_json(capsys, url, "--all", *WINDOW))
    flags = {name: [(f["kind"], f["variant"]) for f in e["flags"]] for name, e in experiments.items()}
    assert flags == {
        "Legacy": [("traffic_while_stopped", None)],
        "failing-rc": [("high_error_rate", "rc2")],
        "hot-swapped": [("stale_version", "treatment")],
        "paused-exp": [("traffic_while_stopped", None)],
        "quiet": [("no_traffic", None)],
        "srm-planted": [("srm", None)],
        "steady": [],
    }
    assert experiments["srm-planted"]["srm"]["verdict"] == "mismatch"
    assert experiments["srm-planted"]["srm"]["p_value"] < 0.001
    assert all(e["srm"]["verdict"] in ("ok", "too_few_units") for n, e in experiments.items() if n != "srm-planted")
    assert f"{LATE_REQUESTS} request(s) after it was completed" in experiments["Legacy"]["flags"][0]["message"]
    stale = experiments["hot-swapped"]["flags"][0]
    assert stale["version_id"] == seeded.versions[("hot-swapped", "treatment")][0]
    assert stale["message"].startswith(f"{STALE_REQUESTS} request(s) to treatment")
    assert experiments["steady"]["totals"]["anonymous_requests"] == 12  # machine/ip: not in the split


def test_counts_match_plain_sql(repo: Path, scenario: tuple[str, Seeded], capsys: pytest.CaptureFixture[str]) -> None:
    url = scenario[0]
    experiments = by_name(status_json(capsys, url, "--all", *WINDOW))
    with connect(url) as conn:
        rows = conn.execute(text(
            "SELECT r.variant_version_id::text, count(*), count(DISTINCT u.kilo_user_id) FILTER "
            "(WHERE r.allocation_subject = 'user'), count(*) FILTER (WHERE u.has_error), sum(u.cost) "
            "FROM model_experiment_request r JOIN microdollar_usage u ON u.id = r.usage_id "
            "WHERE r.created_at >= :since AND r.created_at < :until GROUP BY 1"),
            {"since": SINCE, "until": UNTIL}).all()
    expected = {version: (requests, users, errors, int(cost)) for version, requests, users, errors, cost in rows}
    reported = {v["version_id"]: (v["requests"], v["users"], v["errors"], v["cost_microdollars"])
                for e in experiments.values() for slot in e["variants"] for v in slot["versions"] if v["requests"]}
    assert reported == expected
    assert sum(e["totals"]["requests"] for e in experiments.values()) == sum(r[1] for r in rows)


def test_default_window_and_managed_routed_only(repo: Path, scenario: tuple[str, Seeded],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    record = status_json(capsys, scenario[0], "--until", UNTIL.isoformat())
    experiments = by_name(record)
    assert sorted(experiments) == ["failing-rc", "hot-swapped", "paused-exp", "quiet", "srm-planted", "steady"]
    window = experiments["hot-swapped"]["window"]
    assert window == {"since": SWAP_AT.isoformat().replace("+00:00", "Z"), "until": "2026-11-10T00:00:00Z",
                      "default_since": True}
    # Only the requests after the swap are in the window: all of the old version's are stale.
    old = experiments["hot-swapped"]["variants"][1]["versions"][0]
    assert (old["current"], old["requests"]) == (False, STALE_REQUESTS)


def test_selectors_and_exit_code(repo: Path, scenario: tuple[str, Seeded], capsys: pytest.CaptureFixture[str]) -> None:
    url = scenario[0]
    record = status_json(capsys, url, "steady", "preview/srm-planted", *WINDOW)
    assert [e["name"] for e in record["experiments"]] == ["srm-planted", "steady"]
    assert status(capsys, url, "steady", *WINDOW, "--exit-code")[0] == 0
    assert status(capsys, url, "srm-planted", *WINDOW, "--exit-code")[0] == 2
    assert status(capsys, url, "srm-planted", *WINDOW)[0] == 0  # flags alone do not fail without --exit-code
    code, _, err = status(capsys, url, "preview/legacy")
    assert code == 1 and "add --all" in err
    assert by_name(status_json(capsys, url, "preview/legacy", "--all", *WINDOW)).keys() == {"Legacy"}
    code, _, err = status(capsys, url, "--since", "yesterday")
    assert code == 1 and "not a duration" in err


def test_missing_tables_is_one_clear_line(repo: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = status(capsys, db)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "model_experiment_request, microdollar_usage missing" in err


def test_constant_statements_and_read_only(repo: Path, scenario: tuple[str, Seeded],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(Engine, "before_cursor_execute", count)
    try:
        status(capsys, scenario[0], "steady", *WINDOW)
        one = list(statements)
        statements.clear()
        status(capsys, scenario[0], "--all", *WINDOW)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert statements == one
    assert one[0] == "SET" and not {"INSERT", "UPDATE", "DELETE"} & set(one)
    assert len(one) <= 8
