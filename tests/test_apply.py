"""End-to-end apply/reconcile against a real PostgreSQL and Redis started by the suite."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from expctl.adapters.crypto import decrypt_api_key, parse_byok_key
from expctl.adapters.store.applier import _insert, new_id
from expctl.adapters.store.db import connect
from expctl.adapters.store.tables import model_experiment, model_experiment_variant
from expctl.app.service import _map_integrity
from tests.workspace import BYOK_B64, UPSTREAM_A, Workspace, manifest

BYOK = parse_byok_key(BYOK_B64)


def current_keys(ws: Workspace, name: str) -> dict[str, str]:
    rows = ws.rows(
        "SELECT DISTINCT ON (v.id) v.label, vv.encrypted_api_key FROM model_experiment_variant v "
        "JOIN model_experiment_variant_version vv ON vv.variant_id = v.id "
        "WHERE v.experiment_id = :id ORDER BY v.id, vv.effective_at DESC, vv.id DESC",
        id=ws.experiment(name)["id"])
    return {r["label"]: decrypt_api_key(BYOK, r["encrypted_api_key"]) for r in rows}


def test_lifecycle_walk(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    assert ws.reconcile().code == 0
    row = ws.experiment("exp")
    assert (row["status"], row["started_at"], ws.membership()) == ("draft", None, [])
    assert current_keys(ws, "exp") == {"control": "secret-a", "treatment": "secret-b"}

    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    started = ws.experiment("exp")["started_at"]
    assert started is not None and ws.membership() == ["preview/x"]

    ws.write(manifest("exp", "paused"))
    assert ws.reconcile().code == 0
    assert ws.experiment("exp")["status"] == "paused" and ws.membership() == ["preview/x"]

    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    assert ws.experiment("exp")["started_at"] == started  # resume keeps started_at

    ws.write(manifest("exp", "completed", archived=True))
    assert ws.reconcile().code == 0
    row = ws.experiment("exp")
    assert (row["status"], row["is_archived"], ws.membership()) == ("completed", True, [])
    assert row["ended_at"] is not None


def test_second_reconcile_is_a_noop(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"), manifest("other", "draft", public_id="preview/y"))
    assert ws.reconcile().code == 0
    before = ws.dump()
    result = ws.reconcile()
    assert result.code == 0 and "Nothing to apply" in result.out
    assert ws.dump() == before  # no updated_at bumped, no rows added
    plan = ws.expctl("plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out


def test_hot_swap_and_rotation_keep_history(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    swapped = manifest("exp", "active")
    swapped["variants"][0]["upstream"] = {**UPSTREAM_A, "internal_id": "up-a2"}
    ws.write(swapped)
    assert ws.reconcile().code == 0
    ws.monkeypatch.setenv("KEY_B", "secret-b-rotated")
    result = ws.reconcile()
    assert result.code == 0
    assert "secret-b-rotated" not in result.out + result.err
    assert current_keys(ws, "exp") == {"control": "secret-a", "treatment": "secret-b-rotated"}
    versions = ws.rows("SELECT v.label, count(*) AS n FROM model_experiment_variant_version vv "
                       "JOIN model_experiment_variant v ON v.id = vv.variant_id GROUP BY v.label ORDER BY v.label")
    assert versions == [{"label": "control", "n": 2}, {"label": "treatment", "n": 2}]
    upstream = ws.rows("SELECT DISTINCT ON (v.id) vv.upstream FROM model_experiment_variant v JOIN "
                       "model_experiment_variant_version vv ON vv.variant_id = v.id WHERE v.label = 'control' "
                       "ORDER BY v.id, vv.effective_at DESC, vv.id DESC")
    assert upstream == [{"upstream": {**UPSTREAM_A, "internal_id": "up-a2"}}]


def test_refusal_changes_nothing_anywhere(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"), manifest("ok", "draft", public_id="preview/y"))
    assert ws.reconcile().code == 0
    before, redis_before = ws.dump(), ws.redis_dump()
    frozen = manifest("exp", "active")
    frozen["variants"][0]["weight"] = 5  # structure is frozen once active
    ok = manifest("ok", "active", public_id="preview/y")  # allowed on its own, but must not be applied either
    ws.write(frozen, ok)
    result = ws.reconcile()
    assert result.code == 1
    assert "REFUSED" in result.out or "refused" in result.out.lower()
    assert ws.dump() == before and ws.redis_dump() == redis_before
    audit = ws.rows("SELECT outcome FROM expctl_run ORDER BY id DESC LIMIT 1")
    assert audit == [{"outcome": "refused"}]


def test_replacing_the_active_experiment_in_one_run(ws: Workspace) -> None:
    ws.write(manifest("old", "active"), manifest("new", "draft"))
    assert ws.reconcile().code == 0
    ws.write(manifest("old", "completed"), manifest("new", "active"))
    assert ws.reconcile().code == 0
    assert ws.experiment("old")["status"] == "completed"
    assert ws.experiment("new")["status"] == "active"
    assert ws.membership() == ["preview/x"]


def test_saved_plan_applies_and_goes_stale(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "draft"))
    assert ws.expctl("plan", "--out", str(tmp_path / "plan.json")).code == 0
    assert ws.expctl("apply", str(tmp_path / "plan.json"), "--auto-approve").code == 0
    assert ws.experiment("exp")["status"] == "draft"

    ws.write(manifest("exp", "active"))
    assert ws.expctl("plan", "--out", str(tmp_path / "plan2.json")).code == 0
    ws.execute("UPDATE model_experiment SET name = 'Renamed in the admin UI'")  # drift underneath
    stale = ws.expctl("apply", str(tmp_path / "plan2.json"), "--auto-approve")
    assert stale.code == 4 and "database changed since it was saved" in stale.err
    assert ws.experiment("exp")["status"] == "draft"

    assert ws.expctl("plan", "--out", str(tmp_path / "plan3.json")).code == 0
    ws.write(manifest("exp", "active", description="edited after planning"))
    stale = ws.expctl("apply", str(tmp_path / "plan3.json"), "--auto-approve")
    assert stale.code == 4 and "manifests changed" in stale.err
    assert ws.experiment("exp")["status"] == "draft"


def test_redis_down_after_commit_exits_3_then_heals(ws: Workspace) -> None:
    import redis

    ws.monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")  # the profile with per-id keys to invalidate
    stale_key = "ai-gateway.model-experiments:by-public-id:preview/x"
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(stale_key, "routing cached before the change")
    ws.write(manifest("exp", "active"))
    down = ws.expctl("reconcile", "--auto-approve", redis_url="redis://127.0.0.1:1/0")
    assert down.code == 3 and "PostgreSQL is committed" in down.err
    assert ws.experiment("exp")["status"] == "active"
    assert ws.membership() is None
    check = ws.expctl("cache", "check")
    assert check.code == 2
    healed = ws.reconcile()
    assert healed.code == 0 and "Nothing to apply" in healed.out
    assert ws.membership() == ["preview/x"]
    with redis.Redis.from_url(ws.redis_url) as client:
        assert client.get(stale_key) is None  # the failed run's invalidation was kept in the outbox
    assert ws.rows("SELECT * FROM expctl_cache_outbox") == []
    assert ws.expctl("cache", "check").code == 0


def test_reconcile_heals_corrupt_membership(ws: Workspace) -> None:
    import redis

    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set("ai-gateway.model-experiments:experimented-public-ids", "not json")
        client.set("ai-gateway.model-experiments:by-public-id:preview/x", "{}")
    assert ws.expctl("cache", "check").code == 2
    assert ws.reconcile().code == 0
    assert ws.membership() == ["preview/x"]


def test_per_id_key_dropped_on_routing_change_only(ws: Workspace) -> None:
    import redis

    ws.monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")  # 2026-11 never touches them (test_profile_apply)
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    key = "ai-gateway.model-experiments:by-public-id:preview/x"
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(key, "cached")
        ws.write(manifest("exp", "active", description="only the text changes"))
        assert ws.reconcile().code == 0
        assert client.get(key) == b"cached"  # re-describing changes no routing
        ws.write(manifest("exp", "paused"))
        assert ws.reconcile().code == 0
        assert client.get(key) is None


def test_no_redis_url_needs_skip_cache(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    refused = ws.expctl("reconcile", "--auto-approve", redis_url=None)
    assert refused.code == 1 and "--skip-cache" in refused.err
    assert ws.rows("SELECT id FROM model_experiment") == []
    assert ws.expctl("reconcile", "--auto-approve", "--skip-cache", redis_url=None).code == 0


def test_apply_refuses_without_tty_or_auto_approve(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    result = ws.expctl("apply")
    assert result.code == 1 and "--auto-approve" in result.err


def test_lock_timeout_exits_5(ws: Workspace) -> None:
    from sqlalchemy import text

    from expctl.adapters.store.db import APPLY_LOCK_KEY, connect

    ws.write(manifest("exp", "draft"))
    with connect(ws.db_url) as holder, holder.begin():
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPLY_LOCK_KEY})
        result = ws.expctl("reconcile", "--auto-approve", "--lock-timeout", "0.5")
    assert result.code == 5 and "lock" in result.err
    assert ws.rows("SELECT id FROM model_experiment") == []


def test_missing_byok_key_is_named_not_shown(ws: Workspace) -> None:
    ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", "c2hvcnQ=")
    ws.write(manifest("exp", "draft"))
    result = ws.reconcile()
    assert result.code == 1 and "BYOK_ENCRYPTION_KEY" in result.err and "c2hvcnQ=" not in result.err


def test_canary_secret_never_leaks(ws: Workspace, tmp_path: Path) -> None:
    canary = "sk-ant-CANARY-7f3a9c1e5b2d4f6a8c0e"
    ws.monkeypatch.setenv("KEY_A", canary)
    ws.write(manifest("exp", "active"))
    outputs = [ws.expctl("plan", "--format", fmt, "--out", str(tmp_path / f"{fmt}.json")) for fmt in
               ("text", "markdown", "json", "github")]
    outputs.append(ws.reconcile())
    ws.monkeypatch.setenv("KEY_A", canary + "-rotated")
    outputs += [ws.expctl("plan"), ws.reconcile(), ws.expctl("history", "--format", "json"),
                ws.expctl("cache", "check")]
    assert all(o.code == 0 for o in outputs), [(o.code, o.err) for o in outputs]
    for output in outputs:
        assert canary not in output.out + output.err
    for plan_file in tmp_path.glob("*.json"):
        assert canary not in plan_file.read_text()
    assert canary not in json.dumps(ws.rows("SELECT * FROM expctl_run"), default=str)
    assert canary.encode() not in b"".join(k.encode() + v for k, v in ws.redis_dump().items())
    assert BYOK_B64 not in "".join(o.out + o.err for o in outputs)


def test_removed_manifests_prune_and_release(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("keep-draft", "draft", public_id="preview/a"), manifest("done", "active", public_id="preview/b"),
             manifest("live", "active", public_id="preview/c"))
    assert ws.reconcile().code == 0
    ws.write(manifest("done", "completed", public_id="preview/b"), manifest("live", "active", public_id="preview/c"))
    assert ws.reconcile().code == 0
    ws.write(manifest("live", "active", public_id="preview/c"))
    plan = ws.expctl("plan")
    assert plan.code == 0 and "deleted only with --prune" in plan.out
    assert ws.expctl("plan", "--prune", "--out", str(tmp_path / "prune.json")).code == 0
    assert ws.expctl("apply", str(tmp_path / "prune.json"), "--auto-approve").code == 0  # the plan's --prune
    assert ws.rows("SELECT name FROM model_experiment ORDER BY name") == [{"name": "Done"}, {"name": "Live"}]
    assert ws.rows("SELECT name FROM expctl_binding") == [{"name": "live"}]  # completed one released, row kept
    ws.write()
    refused = ws.reconcile("--prune")
    assert refused.code == 1 and "complete" in refused.out
    assert ws.experiment("live")["status"] == "active"


def test_new_ids_are_random_version_4_uuids() -> None:
    ids = [new_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for shown in ids:
        parsed = uuid.UUID(shown)
        assert str(parsed) == shown and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Every hexadecimal digit shows up in the random positions: nothing is stuck.
    assert {c for shown in ids for c in shown.replace("-", "")} == set("0123456789abcdef")


def test_a_constraint_hit_by_copy_is_an_integrity_error_naming_it(db: str) -> None:
    """COPY runs on psycopg directly; its errors must still reach the apply's constraint mapping."""
    experiment = {"id": new_id(), "public_model_id": "preview/x", "name": "X", "description": None, "status": "draft",
                  "is_archived": False}
    variant = {"id": new_id(), "experiment_id": experiment["id"], "label": "control", "weight": 0}
    with connect(db) as conn, conn.begin():
        _insert(conn, model_experiment, [experiment])
        with pytest.raises(IntegrityError) as raised:
            _insert(conn, model_experiment_variant, [variant])
    error = _map_integrity(raised.value, db)
    assert "model_experiment_variant_weight_positive" in str(error) and "weights must be positive" in str(error)
    with connect(db) as conn:  # the transaction was rolled back: nothing was written
        assert conn.execute(text("SELECT count(*) FROM model_experiment")).scalar_one() == 0
