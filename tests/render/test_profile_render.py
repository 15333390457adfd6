"""The gateway profile and experiment metadata in every rendering, and in the published schema."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema

from expctl.core.planner import build_plan
from expctl.core.profiles import PROFILES
from expctl.core.render.describe import describe_change
from expctl.core.render.github_plan import render_github
from expctl.core.render.json_plan import load_plan_schema
from expctl.core.render.jsondiff import changed_keys, leaves
from expctl.core.render.markdown import render_markdown
from expctl.core.render.text import render_text
from expctl.core.state import ActualState
from tests.render.plans import actual, desired, plan_record, same_keys

OLD = {"context_length": 200000, "max_completion_tokens": 32000, "opencode_settings": {"ai_sdk_provider": "openai"}}
NEW = {"context_length": 128000, "max_completion_tokens": 32000,
       "opencode_settings": {"ai_sdk_provider": "openai", "family": "claude"}}


def _metadata_record(before: Any, after: Any, status: str = "active", **plan: Any) -> dict[str, Any]:
    wanted = [dataclasses.replace(desired("exp", status=status), metadata=after)]  # type: ignore[arg-type]
    row = dataclasses.replace(actual("exp", status=status), metadata=before)  # type: ignore[arg-type]
    state = ActualState((row,))
    return build_plan(wanted, state, same_keys(wanted), **plan).to_record()


def test_a_metadata_change_reads_as_the_keys_that_changed() -> None:
    record = _metadata_record(OLD, NEW)
    [change] = record["experiments"][0]["changes"]
    assert (change["kind"], change["field"], change["routing"], change["allowed"]) == (
        "update_field", "metadata", False, True)
    line = "metadata: context_length 200000 -> 128000, opencode_settings.family (none) -> claude"
    assert describe_change(change) == line
    assert line in render_text(record)
    assert "context\\_length 200000 → 128000" in render_markdown(record)


def test_metadata_set_removed_and_refused_wording() -> None:
    [set_] = _metadata_record(None, NEW)["experiments"][0]["changes"]
    assert describe_change(set_).startswith("metadata: set context_length 128000, max_completion_tokens 32000")
    [removed] = _metadata_record(OLD, None)["experiments"][0]["changes"]
    assert describe_change(removed) == "metadata: removed (the gateway lists the model with its defaults)"
    [refused] = _metadata_record(OLD, NEW, status="completed")["experiments"][0]["changes"]
    assert not refused["allowed"] and refused["reason"].startswith("cannot change metadata while completed")


def test_metadata_is_never_compared_without_the_profile_column() -> None:
    record = _metadata_record(OLD, None, profile=PROFILES["2026-05"])
    assert record["experiments"][0]["changes"] == []
    assert record["gateway_profile"] == "2026-05"


def test_a_new_experiment_carries_its_metadata_only_when_set() -> None:
    wanted = dataclasses.replace(desired("new"), metadata=NEW)
    [create, *_] = plan_record([wanted])["experiments"][0]["changes"]
    assert create["after"]["metadata"] == NEW
    assert describe_change(create).endswith("(as draft); metadata: set context_length 128000, "
                                            "max_completion_tokens 32000, opencode_settings.ai_sdk_provider openai, "
                                            "opencode_settings.family claude")
    [create, *_] = plan_record([desired("new")])["experiments"][0]["changes"]
    assert "metadata" not in create["after"]


def test_the_profile_is_in_every_head_and_in_the_plan_id() -> None:
    new = _metadata_record(OLD, OLD)
    old = _metadata_record(OLD, OLD, profile=PROFILES["2026-05"])
    assert new["plan_id"] != old["plan_id"]
    assert render_text(new).splitlines()[0].endswith(" (gateway profile 2026-11)")
    assert "(gateway profile 2026-05)" in render_markdown(old)
    assert render_github(old).splitlines()[-1] == "0 change(s), 0 refused (gateway profile 2026-05)"
    schema = load_plan_schema()
    jsonschema.validate(new, schema)
    jsonschema.validate(_metadata_record(OLD, NEW), schema)
    assert "gateway_profile" in schema["required"]


def test_changed_keys_flattens_and_tells_json_types_apart() -> None:
    assert leaves({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
    assert changed_keys({"a": 1, "b": True, "c": 2}, {"a": 1.0, "b": 1, "d": 3}) == [
        ("a", 1, 1.0), ("b", True, 1), ("d", None, 3), ("c", 2, None)]
