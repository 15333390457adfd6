"""What a reviewer approves is exactly what is applied: saved plans as contracts, every key change
visible, unavailable secrets listed before merge (issue 13), end to end on a real PostgreSQL and Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.test_apply import current_keys
from tests.workspace import MEMBERSHIP_KEY, UPSTREAM_A, UPSTREAM_B, Workspace, manifest


def _variants(key_a: dict[str, str], upstream_a: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        {"label": "control", "weight": 1, "upstream": dict(upstream_a or UPSTREAM_A), "api_key": key_a},
        {"label": "treatment", "weight": 1, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
    ]


def _versions(ws: Workspace) -> int:
    return len(ws.rows("SELECT id FROM model_experiment_variant_version"))


# ---------------------------------------------------------------- saved plans are contracts

def test_a_secret_changed_after_the_plan_was_saved_is_stale(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    plan = tmp_path / "plan.json"
    assert ws.expctl("plan", "--out", str(plan)).code == 0  # 0 changes reviewed
    before = ws.dump()
    ws.monkeypatch.setenv("KEY_A", "never-reviewed")
    ws.monkeypatch.setenv("KEY_B", "never-reviewed-either")
    stale = ws.expctl("apply", str(plan), "--auto-approve")
    assert stale.code == 4, stale.err
    assert "stale" in stale.err and "nothing was applied" in stale.err
    assert ws.dump() == before
    assert current_keys(ws, "exp") == {"control": "secret-a", "treatment": "secret-b"}


def test_a_reviewed_rotation_applies_and_a_different_one_does_not(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    ws.monkeypatch.setenv("KEY_A", "rotated-and-reviewed")
    plan = tmp_path / "plan.json"
    assert ws.expctl("plan", "--out", str(plan)).code == 0
    ws.monkeypatch.setenv("KEY_A", "rotated-again-unreviewed")
    assert ws.expctl("apply", str(plan), "--auto-approve").code == 4
    ws.monkeypatch.setenv("KEY_A", "rotated-and-reviewed")
    applied = ws.expctl("apply", str(plan), "--auto-approve")
    assert applied.code == 0, applied.err
    assert current_keys(ws, "exp")["control"] == "rotated-and-reviewed"


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("edit", [
    lambda r: r["experiments"][0]["changes"][0].update(allowed=False),
    lambda r: r["experiments"][0]["changes"].clear(),
    lambda r: r.update(plan_id="sha256:" + "0" * 64),
    lambda r: r["options"].update(prune=True),
])
def test_an_edited_plan_file_is_refused(ws: Workspace, tmp_path: Path, edit: Any) -> None:
    ws.write(manifest("exp", "draft"))
    plan = tmp_path / "plan.json"
    assert ws.expctl("plan", "--out", str(plan)).code == 0
    _edit(plan, edit)
    result = ws.expctl("apply", str(plan), "--auto-approve")
    assert result.code == 1, result.err
    assert "edited" in result.err
    assert ws.rows("SELECT id FROM model_experiment") == []


@pytest.mark.parametrize(("content", "words"), [
    (b"not json at all", "not JSON"),
    (b'{"format_version": 1, "plan_id": "sha256:', "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"a":' * 200 + b"1" + b"}" * 200, "nested"),
    (b'{"format_version": 2}', "format_version"),
    (b'{"format_version": 1, "plan_id": 5}', "not a saved expctl plan"),
    (b"[1, 2]", "not a saved expctl plan"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_file_that_is_not_a_plan_exits_1_without_a_traceback(
        ws: Workspace, tmp_path: Path, content: bytes, words: str) -> None:
    ws.write(manifest("exp", "draft"))
    plan = tmp_path / "plan.json"
    plan.write_bytes(content)
    result = ws.expctl("apply", str(plan), "--auto-approve")
    assert result.code == 1, result.err
    assert words in result.err and "internal error" not in result.err and "Traceback" not in result.err
    assert ws.rows("SELECT id FROM model_experiment") == []


def test_a_plan_file_over_the_size_limit_is_refused(ws: Workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import expctl.cli.cmd_plan as cmd_plan
    import expctl.core.saved_plan as saved_plan

    ws.write(manifest("exp", "draft"))
    plan = tmp_path / "plan.json"
    assert ws.expctl("plan", "--out", str(plan)).code == 0
    for module in (cmd_plan, saved_plan):
        monkeypatch.setattr(module, "MAX_PLAN_BYTES", 100)
    result = ws.expctl("apply", str(plan), "--auto-approve")
    assert result.code == 1 and "larger than" in result.err


def test_a_plan_saved_without_the_byok_key_says_why_it_cannot_be_applied(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    ws.monkeypatch.delenv("BYOK_ENCRYPTION_KEY")
    plan = tmp_path / "plan.json"
    saved = ws.expctl("plan", "--out", str(plan))
    assert saved.code == 0 and "defers 2 api key comparison(s)" in saved.err
    ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    stale = ws.expctl("apply", str(plan), "--auto-approve")
    assert stale.code == 4 and "deferred 2 api key comparison(s)" in stale.err


# ---------------------------------------------------------------- every key change is visible

def test_a_rotation_that_comes_with_a_hot_swap_is_its_own_change(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    ws.write(manifest("exp", "active", variants=_variants({"from_env": "KEY_A"},
                                                         {**UPSTREAM_A, "internal_id": "up-a2"})))
    ws.monkeypatch.setenv("KEY_A", "rotated-with-the-swap")
    plan = ws.expctl("plan", "--format", "json")
    record = json.loads(plan.out)
    assert record["summary"]["hot_swap"] == 1 and record["summary"]["rotate_key"] == 1
    rotation = next(c for c in record["experiments"][0]["changes"] if c["kind"] == "rotate_key")
    assert rotation["before"].startswith("sha256:") and rotation["after"].startswith("sha256:")
    assert rotation["before"] != rotation["after"]
    text = ws.expctl("plan").out
    assert f"api key: changed {rotation['before']} -> {rotation['after']}" in text
    markdown = ws.expctl("plan", "--format", "markdown").out
    assert f"{rotation['before']} → {rotation['after']}" in markdown
    assert ws.reconcile().code == 0
    assert current_keys(ws, "exp")["control"] == "rotated-with-the-swap"


def test_a_key_sent_to_a_new_host_is_called_out_in_every_format(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    moved = {"internal_id": "up-a", "base_url": "https://collector.example.net/v1"}
    ws.write(manifest("exp", "active", variants=_variants({"from_env": "KEY_A"}, moved)))
    sentence = "api key env:KEY_A now sent to collector.example.net (was a.example.com)"
    record = json.loads(ws.expctl("plan", "--format", "json").out)
    assert record["summary"]["key_host_changes"] == 1
    assert [a["message"] for a in record["attention"]] == [sentence]
    assert record["attention"][0]["location"]["line"] > 1
    for fmt in ("text", "markdown", "github"):
        out = ws.expctl("plan", "--format", fmt).out
        assert "collector.example.net (was a.example.com)" in out, fmt
        assert "api key sent to a new host" in out or fmt == "github", fmt


# ---------------------------------------------------------------- unavailable secrets

def test_every_unavailable_secret_is_listed_before_merge(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "repo-secret").write_text("unused")
    ws.write(manifest("exp", "active", variants=[
        {"label": "a", "weight": 1, "upstream": dict(UPSTREAM_A), "api_key": {"from_env": "MISSING_ONE"}},
        {"label": "b", "weight": 1, "upstream": dict(UPSTREAM_B), "api_key": {"from_file": "secrets/missing-two"}},
        {"label": "c", "weight": 1, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
    ]))
    plan = ws.expctl("plan", "--format", "json")
    assert plan.code == 0
    record = json.loads(plan.out)
    assert record["summary"]["unavailable_secrets"] == 2
    found = {(a["secret"], a["blocking"], a["location"]["line"]) for a in record["attention"]}
    assert {s for s, _, _ in found} == {"env:MISSING_ONE", "file:secrets/missing-two"}
    assert all(blocking for _, blocking, _ in found)  # the BYOK key is here: apply would fail
    text = ws.expctl("plan").out
    assert "secret env:MISSING_ONE is not available here: apply needs it and would fail" in text
    assert "exp/b (experiments.d/exp.yaml:" in text
    assert ws.expctl("plan", "--require-secrets").code == 1
    before = ws.dump()
    failed = ws.reconcile()
    assert failed.code == 1
    assert "2 secret(s) not available" in failed.err
    assert "env:MISSING_ONE" in failed.err and "file:secrets/missing-two" in failed.err
    assert ws.dump() == before


def test_without_the_byok_key_unavailable_secrets_are_deferred_not_blocking(ws: Workspace) -> None:
    ws.monkeypatch.delenv("BYOK_ENCRYPTION_KEY")
    ws.monkeypatch.delenv("KEY_A")
    ws.write(manifest("exp", "draft"))
    record = json.loads(ws.expctl("plan", "--format", "json").out)
    assert [(a["secret"], a["blocking"]) for a in record["attention"]] == [("env:KEY_A", False)]
    assert "checked at apply (no BYOK key here)" in record["attention"][0]["message"]


# ---------------------------------------------------------------- smaller holes

def test_redis_only_drift_is_a_change_for_detailed_exitcode(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    assert ws.expctl("plan", "--detailed-exitcode").code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.delete(MEMBERSHIP_KEY)
    assert ws.expctl("plan", "--detailed-exitcode").code == 2


def test_redis_down_with_nothing_to_apply_does_not_claim_a_commit(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    down = ws.expctl("reconcile", "--auto-approve", redis_url="redis://127.0.0.1:1/0")
    assert down.code == 3
    assert "PostgreSQL is committed" not in down.err and "PostgreSQL needed no change" in down.err


def test_a_malformed_stored_key_is_one_variants_repair_not_a_global_failure(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"), manifest("other", "active", public_id="preview/other"))
    assert ws.reconcile().code == 0
    ws.execute("UPDATE model_experiment_variant_version SET encrypted_api_key = "
               "'{\"iv\": \"not base64!\", \"data\": \"x\", \"authTag\": \"y\"}' "
               "WHERE variant_id IN (SELECT v.id FROM model_experiment_variant v JOIN expctl_binding b "
               "ON b.experiment_id = v.experiment_id WHERE b.name = 'exp' AND v.label = 'control')")
    ws.write(manifest("exp", "active"), manifest("other", "active", public_id="preview/other",
                                                description="still planned"))
    plan = ws.expctl("plan", "--format", "json")
    assert plan.code == 0, plan.err
    record = json.loads(plan.out)
    assert record["summary"]["unreadable_stored_keys"] == 1 and record["summary"]["update_field"] == 1
    assert "cannot be decrypted" in ws.expctl("plan").out
    versions = _versions(ws)
    assert ws.reconcile().code == 0
    assert _versions(ws) == versions + 1
    assert current_keys(ws, "exp")["control"] == "secret-a"
    assert ws.expctl("plan", "--detailed-exitcode").code == 0


def test_a_host_pin_refuses_sending_the_key_elsewhere(ws: Workspace) -> None:
    (ws.root / "expctl.toml").write_text('[secrets.host_pins]\n"env:KEY_A" = ["a.example.com"]\n')
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    moved = {"internal_id": "up-a", "base_url": "https://collector.example.net/v1"}
    ws.write(manifest("exp", "active", variants=_variants({"from_env": "KEY_A"}, moved)))
    before = ws.dump()
    plan = ws.expctl("plan")
    assert plan.code == 1
    assert "api key env:KEY_A may only be sent to a.example.com" in plan.out
    assert ws.reconcile().code == 1
    assert ws.dump() == before
    # A new experiment is held to the pin as well.
    ws.write(manifest("exp", "active"), manifest("new", "draft", public_id="preview/new",
                                                 variants=_variants({"from_env": "KEY_A"}, moved)))
    refused = json.loads(ws.expctl("plan", "--format", "json").out)
    assert [c["kind"] for _, c in _refused(refused)] == ["add_variant"]


def _refused(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["name"], c) for e in record["experiments"] for c in e["changes"] if not c["allowed"]]


def test_a_wrong_byok_key_is_refused_not_used_to_repair_every_key(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    before = ws.dump()
    ws.monkeypatch.setenv("BYOK_ENCRYPTION_KEY", "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=")
    for command in (("plan",), ("reconcile", "--auto-approve")):
        result = ws.expctl(*command)
        assert result.code == 1, command
        assert "decrypts none of the 2 stored api key(s)" in result.err
    assert ws.dump() == before


def test_one_row_written_with_another_key_is_that_variants_repair(ws: Workspace) -> None:
    from expctl.adapters.crypto import encrypt_api_key

    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    foreign = json.dumps(encrypt_api_key(bytes(32), "secret-a"))
    ws.execute("UPDATE model_experiment_variant_version SET encrypted_api_key = CAST(:k AS jsonb) "
               "WHERE variant_id = (SELECT id FROM model_experiment_variant WHERE label = 'control')", k=foreign)
    record = json.loads(ws.expctl("plan", "--format", "json").out)
    assert record["summary"]["unreadable_stored_keys"] == 1 and record["summary"]["rotate_key"] == 1
    assert ws.reconcile().code == 0
    assert current_keys(ws, "exp") == {"control": "secret-a", "treatment": "secret-b"}
