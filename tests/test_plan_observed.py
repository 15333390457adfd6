"""The markdown plan shows one observed-traffic line per routed experiment it hot-swaps, rotates
or transitions, when the plan job can read the request tables; otherwise the plan is unchanged."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from expctl.adapters.store.db import connect
from tests.traffic import Writer, create_traffic_tables
from tests.workspace import UPSTREAM_A, Workspace, manifest

SECTION = "#### Observed traffic of the experiments changed"
UPSTREAM_C = {"internal_id": "up-c", "base_url": "https://c.example.com/v1"}


def _swapped(name: str, public_id: str) -> dict[str, object]:
    return manifest(name, status="active", public_id=public_id, variants=[
        {"label": "control", "weight": 1, "upstream": dict(UPSTREAM_A), "api_key": {"from_env": "KEY_A"}},
        {"label": "treatment", "weight": 1, "upstream": dict(UPSTREAM_C), "api_key": {"from_env": "KEY_B"}},
    ])


def _seed_requests(ws: Workspace) -> None:
    versions = ws.rows("SELECT vv.id::text AS id, vv.effective_at FROM model_experiment_variant_version vv "
                       "JOIN model_experiment_variant v ON v.id = vv.variant_id ORDER BY v.id")
    writer, start = Writer(), max(v["effective_at"] for v in versions)
    assert start <= datetime.now(UTC)
    for index, version in enumerate(versions):
        for user in range(30):  # just after the versions took effect: inside the default window
            writer.add(version["id"], "user", f"u{index}-{user}", start + timedelta(microseconds=user + 1))
    with connect(ws.db_url) as conn, conn.begin():
        create_traffic_tables(conn)
        writer.flush(conn)


def test_markdown_plan_shows_the_observed_line_of_changed_routed_experiments(ws: Workspace) -> None:
    ws.write(manifest("swap-me", status="active", public_id="preview/a"),
             manifest("rename-me", status="active", public_id="preview/b"))
    assert ws.reconcile().code == 0
    _seed_requests(ws)
    ws.write(_swapped("swap-me", "preview/a"),
             manifest("rename-me", status="active", public_id="preview/b", description="only text"))
    result = ws.expctl("plan", "--format", "markdown")
    assert result.code == 0, result.err
    section = result.out[result.out.index(SECTION):].split("\n#### ", 1)[0]
    lines = section.splitlines()[1:]
    assert len(lines) == 1  # the description change is not a routing change
    assert lines[0].startswith("- **swap-me**: since ")
    # Variants come in id order (random ids here), as the gateway walks them.
    assert re.search(r": 60 requests, split (control|treatment) 50\.0% / (control|treatment) 50\.0% "
                     r"\(declared 50% / 50%\) over 60 users", lines[0]), lines[0]
    assert "SRM ok (p = 1)" in lines[0] and "no flags" in lines[0]
    assert SECTION not in ws.expctl("plan").out  # the terminal plan stays as it was


def test_without_request_tables_the_plan_is_unchanged(ws: Workspace) -> None:
    ws.write(manifest("swap-me", status="active", public_id="preview/a"))
    assert ws.reconcile().code == 0
    ws.write(_swapped("swap-me", "preview/a"))
    result = ws.expctl("plan", "--format", "markdown")
    assert result.code == 0 and result.err == ""
    assert SECTION not in result.out and "hot-swap" in result.out.lower()
