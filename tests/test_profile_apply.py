"""Gateway profiles end to end on a real PostgreSQL and Redis: experiment metadata written and
read back, and the per-id Redis keys left alone under 2026-11 but deleted under 2026-05."""

from __future__ import annotations

import json
from typing import Any

import redis

from expctl.adapters.cache import Cache, membership_key, routing_key
from tests.workspace import Workspace, manifest

META = {"context_length": 200000, "max_completion_tokens": 32000,
        "opencode_settings": {"ai_sdk_provider": "anthropic", "family": "claude"}}
META_2 = {"context_length": 128000, "max_completion_tokens": 32000, "supports_image_input": True}
PER_ID_KEY = "ai-gateway.model-experiments:by-public-id:preview/x"


def plan_record(ws: Workspace, *args: str) -> dict[str, Any]:
    result = ws.expctl("plan", "--format", "json", *args)
    assert result.code == 0, result.err
    record: dict[str, Any] = json.loads(result.out)
    return record


def stored_metadata(ws: Workspace, name: str) -> tuple[Any, str | None]:
    """The column's value and its jsonb type (None for SQL NULL)."""
    [row] = ws.rows("SELECT e.metadata, jsonb_typeof(e.metadata) AS kind FROM model_experiment e "
                    "JOIN expctl_binding b ON b.experiment_id = e.id WHERE b.name = :name", name=name)
    return row["metadata"], row["kind"]


def test_metadata_created_updated_cleared_and_read_back_clean(ws: Workspace) -> None:
    ws.write(manifest("exp", "active", metadata=META))
    assert ws.reconcile().code == 0
    assert stored_metadata(ws, "exp") == (META, "object")
    assert ws.expctl("plan", "--detailed-exitcode").code == 0  # read back: no changes

    ws.write(manifest("exp", "active", metadata=META_2))
    record = plan_record(ws)
    [change] = record["experiments"][0]["changes"]
    assert (change["kind"], change["field"], change["routing"]) == ("update_field", "metadata", False)
    assert (change["before"], change["after"]) == (META, META_2)
    text = ws.expctl("plan").out
    assert "metadata: context_length 200000 -> 128000" in text
    assert "opencode_settings.family claude -> (none)" in text
    assert ws.reconcile().code == 0
    assert stored_metadata(ws, "exp") == (META_2, "object")
    assert ws.expctl("plan", "--detailed-exitcode").code == 0

    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    assert stored_metadata(ws, "exp") == (None, None)  # SQL NULL, not a JSON null
    assert ws.expctl("plan", "--detailed-exitcode").code == 0


def test_metadata_and_other_fields_of_many_experiments_in_one_statement(ws: Workspace) -> None:
    ws.write(*(manifest(f"exp-{i}", "draft", public_id=f"preview/x{i}") for i in range(3)))
    assert ws.reconcile().code == 0
    # Mixed column sets in one run: metadata alone, metadata with the name, metadata removed.
    ws.write(manifest("exp-0", "draft", public_id="preview/x0", metadata=META),
             {**manifest("exp-1", "draft", public_id="preview/x1", metadata=META_2), "display_name": "Renamed"},
             manifest("exp-2", "draft", public_id="preview/x2"))
    assert ws.reconcile().code == 0
    assert stored_metadata(ws, "exp-0") == (META, "object")
    assert stored_metadata(ws, "exp-1") == (META_2, "object")
    assert ws.experiment("exp-1")["name"] == "Renamed"
    assert stored_metadata(ws, "exp-2") == (None, None)
    assert ws.expctl("plan", "--detailed-exitcode").code == 0


def test_metadata_of_a_completed_experiment_is_refused(ws: Workspace) -> None:
    ws.write(manifest("exp", "active", metadata=META))
    assert ws.reconcile().code == 0
    ws.write(manifest("exp", "completed", metadata=META))
    assert ws.reconcile().code == 0
    ws.write(manifest("exp", "completed", metadata=META_2))
    before = ws.dump()
    result = ws.reconcile()
    assert result.code == 1 and "cannot change metadata while completed" in result.out + result.err
    assert ws.dump() == before


def test_2026_05_never_compares_or_writes_metadata(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile("--gateway-profile", "2026-05").code == 0
    ws.execute("UPDATE model_experiment SET metadata = CAST(:m AS jsonb)", m=json.dumps(META))  # the admin UI
    assert ws.expctl("plan", "--detailed-exitcode", "--gateway-profile", "2026-05").code == 0
    ws.write(manifest("exp", "paused"))
    assert ws.reconcile("--gateway-profile", "2026-05").code == 0
    assert stored_metadata(ws, "exp") == (META, "object")
    # The same rows under 2026-11 with a manifest without metadata: NULL is the desired state.
    record = plan_record(ws)
    assert [(c["field"], c["after"]) for c in record["experiments"][0]["changes"]] == [("metadata", None)]


def test_the_plan_names_its_profile_and_the_profile_is_part_of_the_id(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    new, old = plan_record(ws), plan_record(ws, "--gateway-profile", "2026-05")
    assert (new["gateway_profile"], old["gateway_profile"]) == ("2026-11", "2026-05")
    assert new["plan_id"] != old["plan_id"]
    assert "(gateway profile 2026-11)" in ws.expctl("plan").out.splitlines()[0]


def test_2026_11_leaves_per_id_keys_alone(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    assert ws.reconcile().code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(PER_ID_KEY, "not json at all")  # corrupt for 2026-05; 2026-11 never reads it
        assert ws.expctl("cache", "check").code == 0
        ws.write(manifest("exp", "paused"))
        assert ws.reconcile().code == 0
        assert ws.expctl("cache", "refresh").code == 0
        assert client.get(PER_ID_KEY) == b"not json at all"
    assert ws.membership() == ["preview/x"]


def test_2026_05_deletes_per_id_keys_on_routing_changes(ws: Workspace) -> None:
    profile = ("--gateway-profile", "2026-05")
    ws.write(manifest("exp", "active"))
    assert ws.reconcile(*profile).code == 0
    with redis.Redis.from_url(ws.redis_url) as client:
        client.set(PER_ID_KEY, "not json at all")
        assert ws.expctl("cache", "check", *profile).code == 2
        ws.write(manifest("exp", "paused"))
        assert ws.reconcile(*profile).code == 0
        assert client.get(PER_ID_KEY) is None
    assert ws.membership() == ["preview/x"]


def test_cache_without_per_id_keys_writes_only_the_membership(redis_url: str) -> None:
    prefix = "ai-gateway.model-experiments:"
    with redis.Redis.from_url(redis_url) as client:
        client.set(routing_key(prefix, "preview/x"), "[1")
        cache = Cache([redis_url], per_id_keys=False)
        [drift] = cache.check(["preview/x"])  # only the missing membership, not the corrupt per-id value
        assert drift.problem == "membership key is missing"
        assert cache.refresh(["preview/x"], ["preview/x"]) == []
        assert client.get(routing_key(prefix, "preview/x")) == b"[1"
        assert client.get(membership_key(prefix)) == b'["preview/x"]'
        assert cache.check(["preview/x"]) == []
        assert len(Cache([redis_url]).check(["preview/x"])) == 1  # 2026-05 reads it: corrupt
        assert Cache([redis_url]).refresh(["preview/x"], ["preview/x"]) == []
        assert client.get(routing_key(prefix, "preview/x")) is None
