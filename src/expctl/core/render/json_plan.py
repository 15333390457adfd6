"""The published JSON form of a plan (docs/design.md#plans) and its JSON Schema — pure core.

The JSON text is the record of `Plan.to_record()` as it is: `--format json` and the saved `--out`
file are the same bytes, so a saved plan re-renders exactly. Key order is kept (not sorted)
because the record's order is the readable one (format_version and plan_id first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "plan.schema.json"


def render_json(record: Mapping[str, Any]) -> str:
    """The plan record as indented JSON with a trailing newline; non-ASCII text kept readable."""
    return json.dumps(record, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def load_plan_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of format_version 1, shipped as package data.

    A fresh dict on every call, so a caller mutating it cannot corrupt another caller's copy.
    """
    text = resources.files("expctl.core.render").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise TypeError(f"{SCHEMA_RESOURCE} must hold a JSON object")
    return schema
