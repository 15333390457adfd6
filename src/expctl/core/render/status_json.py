"""The published JSON form of `expctl status` (format_version 1) and its JSON Schema — pure core.

The text is the record of `StatusReport.to_record()` as it is, key order kept (format_version
first). The schema ships as package data next to the plan's (docs/design.md#observed-traffic).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "status.schema.json"


def render_status_json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def load_status_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of format_version 1; a fresh dict on every call."""
    text = resources.files("expctl.core.render").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise TypeError(f"{SCHEMA_RESOURCE} must hold a JSON object")
    return schema
