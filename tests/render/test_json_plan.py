"""The JSON plan: exact record round trip, and validity against the published plan.schema.json."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from expctl.core.plan import ATTENTION_SUMMARY_KEYS, AttentionKind, ChangeKind
from expctl.core.render.json_plan import load_plan_schema, render_json
from expctl.core.render.plan_renderers import PLAN_RENDERERS
from tests.render.plans import desired, plan_record, varied_record


def test_render_json_round_trips_the_record_in_order() -> None:
    record = varied_record()
    text = render_json(record)
    assert text.endswith("}\n")
    assert json.loads(text) == record
    assert list(json.loads(text)) == list(record)  # key order kept: format_version, plan_id first
    assert text.startswith('{\n  "format_version": 1,\n  "plan_id": "sha256:')


def test_render_json_keeps_non_ascii_readable() -> None:
    record = plan_record([desired("unicode", display_name="Aperçu — modèle")])
    assert "Aperçu — modèle" in render_json(record)


def testvaried_record_covers_every_change_kind() -> None:
    summary = varied_record()["summary"]
    assert [k.value for k in ChangeKind if summary[k.value] == 0] == []
    assert summary["refused"] > 0


@pytest.mark.parametrize("factory", [
    varied_record,
    lambda: plan_record([]),
    lambda: plan_record([desired("one")]),
])
def test_json_validates_against_the_schema(factory: Any) -> None:
    record = json.loads(render_json(factory()))
    jsonschema.Draft202012Validator(load_plan_schema(), format_checker=jsonschema.FormatChecker()).validate(record)


def test_schema_is_a_valid_draft_2020_12_schema_with_every_change_kind() -> None:
    schema = load_plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["$defs"]["change"]["properties"]["kind"]["enum"]) == {k.value for k in ChangeKind}
    assert set(schema["$defs"]["summary"]["required"]) == {k.value for k in ChangeKind} | {
        "total", "refused", "irreversible", "drift", "held"} | set(ATTENTION_SUMMARY_KEYS.values())
    assert set(schema["$defs"]["attention"]["properties"]["kind"]["enum"]) == {k.value for k in AttentionKind}


def test_schema_rejects_what_the_format_forbids() -> None:
    validator = jsonschema.Draft202012Validator(load_plan_schema())
    record = varied_record()
    assert validator.is_valid(record)
    for broken in (
        {**record, "format_version": 2},
        {**record, "plan_id": "md5:abc"},
        {k: v for k, v in record.items() if k != "cache"},
    ):
        assert not validator.is_valid(broken)
    bad_kind = copy.deepcopy(record)
    bad_kind["experiments"][0]["changes"][0]["kind"] = "drop_table"
    assert not validator.is_valid(bad_kind)


def test_load_plan_schema_returns_a_fresh_copy() -> None:
    first = load_plan_schema()
    first["title"] = "mutated"
    assert load_plan_schema()["title"] != "mutated"


def test_plan_renderers_share_one_signature() -> None:
    record = varied_record()
    assert set(PLAN_RENDERERS) == {"text", "markdown", "json"}
    assert json.loads(PLAN_RENDERERS["json"](record, True)) == record
    assert "\x1b[" in PLAN_RENDERERS["text"](record, True)
    assert "\x1b[" not in PLAN_RENDERERS["text"](record, False)
    assert PLAN_RENDERERS["markdown"](record, False).startswith("<!-- expctl-plan -->\n")
