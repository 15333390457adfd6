"""Drift on a real PostgreSQL: values changed outside expctl since its last apply are marked, held
by default, reverted with --drift=revert, and settled by the manifest when it says otherwise."""

from __future__ import annotations

import json
from typing import Any

from tests.workspace import UPSTREAM_A, Workspace, manifest


def plan_json(ws: Workspace, *args: str) -> dict[str, Any]:
    result = ws.expctl("plan", "--format", "json", *args)
    assert result.code in (0, 2), result.err
    return dict(json.loads(result.out))


def drift_changes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for e in plan["experiments"] for c in e["changes"] if c["drift"]]


def test_an_on_call_pause_is_marked_held_and_kept_until_the_manifest_says_otherwise(ws: Workspace) -> None:
    ws.write(manifest("canary", "active", "preview/canary"))
    assert ws.reconcile().code == 0
    ws.execute("UPDATE model_experiment SET status = 'paused', updated_at = now()")  # the admin UI

    plan = plan_json(ws)
    [change] = drift_changes(plan)
    assert (change["kind"], change["before"], change["after"]) == ("transition", "paused", "active")
    assert change["drift"]["held"] is True and change["drift"]["at"] is not None
    assert plan["summary"]["drift"] == plan["summary"]["held"] == 1
    assert ws.expctl("plan", "--detailed-exitcode").code == 2  # drift is reported even when held
    text = ws.expctl("plan").out
    assert "No changes. 1 drift (1 held, not applied)" in text
    assert "= status: paused -> active [drift: changed outside expctl at" in text
    markdown = ws.expctl("plan", "--format", "markdown").out
    assert "#### ↩️ Drift: changed outside expctl since its last apply" in markdown and "held" in markdown

    held = ws.reconcile()
    assert held.code == 0, held.err
    assert ws.experiment("canary")["status"] == "paused"  # the merge did not undo the pause
    assert drift_changes(plan_json(ws))[0]["drift"]["held"]  # still drift, still visible

    ws.write(manifest("canary", "completed", "preview/canary"))  # the manifest now says otherwise
    plan = plan_json(ws)
    assert drift_changes(plan) == []
    assert ws.reconcile().code == 0
    assert ws.experiment("canary")["status"] == "completed"


def test_revert_restores_the_manifest_and_names_who_hot_swapped(ws: Workspace) -> None:
    ws.write(manifest("canary", "active", "preview/canary"))
    assert ws.reconcile().code == 0
    variant = ws.rows("SELECT v.id FROM model_experiment_variant v WHERE label = 'control'")[0]["id"]
    ws.execute("INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, created_by) "
               "SELECT variant_id, CAST(:u AS jsonb), encrypted_api_key, 'alice@example.com' "
               "FROM model_experiment_variant_version WHERE variant_id = :v",
               u=json.dumps({**UPSTREAM_A, "internal_id": "up-hotfix"}), v=variant)

    [change] = drift_changes(plan_json(ws))
    assert change["kind"] == "hot_swap" and change["drift"]["by"] == "alice@example.com"
    reverted = ws.reconcile("--drift=revert")
    assert reverted.code == 0, reverted.err
    assert "reverted to the manifest's value" in reverted.out
    assert plan_json(ws)["summary"]["total"] == 0
    current = ws.rows("SELECT upstream FROM model_experiment_variant_version WHERE variant_id = :v "
                      "ORDER BY effective_at DESC, id DESC LIMIT 1", v=variant)
    assert current == [{"upstream": UPSTREAM_A}]


def test_a_manifest_change_is_never_drift_and_a_saved_plan_keeps_its_drift_mode(ws: Workspace) -> None:
    ws.write(manifest("canary", "active", "preview/canary"))
    assert ws.reconcile().code == 0
    ws.execute("UPDATE model_experiment SET name = 'Renamed in the UI'")
    ws.write(manifest("canary", "active", "preview/canary", description="now documented"))
    plan = plan_json(ws)
    kinds = {(c["field"], bool(c["drift"])) for e in plan["experiments"] for c in e["changes"]}
    assert kinds == {("display_name", True), ("description", False)}

    assert ws.expctl("plan", "--drift=revert", "--out", "revert.json").code == 0
    applied = ws.expctl("apply", "revert.json", "--auto-approve")
    assert applied.code == 0, applied.err
    assert ws.experiment("canary")["name"] == "Canary" and ws.experiment("canary")["description"] == "now documented"
