"""What one change of a plan record reads as — pure core, shared by the text and markdown renderers.

Secrets: the record never holds a secret value, and the wording here keeps it that way on its own:
an api key is shown only when it has the shape of a fingerprint or of a "checked at apply"
note; any other value is replaced by a placeholder rather than printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from expctl.core.render.jsondiff import changed_keys, leaves

Record = Mapping[str, Any]

CHECKED_AT_APPLY = "checked at apply"  # mirrors expctl.core.plan; repeated so a saved record needs no Plan
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{6,64}")
_SPACE = re.compile(r"\s")  # the same characters as str.isspace()
_MAX_VALUE = 80
_LIST_LIMIT = 20


def limited(items: list[str], limit: int = _LIST_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … and {len(items) - limit} more" if len(items) > limit else "")


def value_text(value: Any) -> str:
    """A short one-line form of a JSON value; quoted when a bare form would be ambiguous."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value and len(value) <= _MAX_VALUE and not _SPACE.search(value):
        return value
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def key_text(value: Any) -> str:
    """An api key as the record holds it: a fingerprint or a "checked at apply" note, nothing else."""
    if isinstance(value, str) and (_FINGERPRINT.fullmatch(value) or value.startswith(CHECKED_AT_APPLY)):
        return value
    return "(not shown)"


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


def _upstream_diff(before: Any, after: Any) -> str:
    if not isinstance(after, Mapping):
        return "hot-swap upstream"
    if not isinstance(before, Mapping):
        return f"hot-swap upstream (no current version) -> internal_id {value_text(after.get('internal_id'))}"
    keys = list(after) + [k for k in before if k not in after]
    diffs = [f"{k} {value_text(before.get(k))} -> {value_text(after.get(k))}" for k in keys
             if before.get(k) != after.get(k)]
    return "hot-swap upstream " + ", ".join(diffs) if diffs else "hot-swap upstream"


def _metadata_diff(before: Any, after: Any) -> str:
    """`metadata: context_length 200000 -> 128000, opencode_settings.family (none) -> claude`: only the
    keys that changed, so a reviewer does not compare two JSON blobs by eye."""
    if not isinstance(after, Mapping):
        return "metadata: removed (the gateway lists the model with its defaults)"
    if not isinstance(before, Mapping):
        return "metadata: set " + limited([f"{k} {value_text(v)}" for k, v in leaves(after).items()])
    diffs = [f"{k} {value_text(old)} -> {value_text(new)}" for k, old, new in changed_keys(before, after)]
    return "metadata: " + (limited(diffs) if diffs else "reformatted (same values)")


def _update_field(change: Record) -> str:
    if change["field"] == "metadata":
        return _metadata_diff(change["before"], change["after"])
    return f"{change['field']}: {value_text(change['before'])} -> {value_text(change['after'])}"


def _variant_added(label: str, after: Any) -> str:
    if not isinstance(after, Mapping):
        return f"variant {label}"
    upstream = after.get("upstream")
    internal = upstream.get("internal_id") if isinstance(upstream, Mapping) else None
    return (f"variant {label} (weight {value_text(after.get('weight'))}, upstream {value_text(internal)}, "
            f"api key {key_text(after.get('api_key'))})")


def _rotation(label: str, change: Record) -> str:
    """Old -> new fingerprint, so a reviewer sees which key is replaced by which."""
    after = key_text(change["after"])
    if after.startswith(CHECKED_AT_APPLY):
        return f"variant {label}: api key: {after}"
    if change["before"] is not None:
        return f"variant {label}: api key: changed {key_text(change['before'])} -> {after}"
    if change["reason"] == CHECKED_AT_APPLY:
        return f"variant {label}: api key: (stored key not compared) -> {after}"
    return f"variant {label}: api key: (none readable) -> {after}"


def _create(after: Any) -> str:
    if not isinstance(after, Mapping):
        return "create experiment"
    archived = ", archived" if after.get("archived") else ""
    metadata = after.get("metadata")
    with_metadata = f"; {_metadata_diff(None, metadata)}" if isinstance(metadata, Mapping) else ""
    return (f"create experiment {value_text(after.get('display_name'))} on {value_text(after.get('public_model_id'))}"
            f" (as {value_text(after.get('status'))}{archived}){with_metadata}")


def _label(change: Record) -> str:
    return value_text(change["variant"])


# What each kind of change reads as; built once (a plan creating 10,000 experiments has 35,000 changes).
_DESCRIBE: dict[str, Callable[[Record], str]] = {
    "update_field": _update_field,
    "transition": lambda c: f"status: {value_text(c['before'])} -> {value_text(c['after'])}",
    "archive": lambda c: "archive",
    "unarchive": lambda c: "unarchive",
    "remove_variant": lambda c: f"variant {_label(c)} (weight {value_text(_get(c['before'], 'weight'))})",
    "rename_variant": lambda c: f"variant {value_text(c['before'])} renamed to {value_text(c['after'])}",
    "reweight_variant": lambda c: f"variant {_label(c)}: weight {value_text(c['before'])} -> {value_text(c['after'])}",
    "hot_swap": lambda c: f"variant {_label(c)}: {_upstream_diff(c['before'], c['after'])}",
    "rotate_key": lambda c: _rotation(_label(c), c),
    "add_variant": lambda c: _variant_added(_label(c), c["after"]),
    "create_experiment": lambda c: _create(c["after"]),
    "delete_experiment": lambda c: f"delete experiment (now {value_text(c['before'])})",
    "release": lambda c: "release from management (the row is kept, expctl stops managing it)",
    "adopt_experiment": lambda c: (f"adopt experiment {value_text(_get(c['after'], 'experiment_id'))} "
                                   "(bind the existing row to this manifest)"),
}


def describe_change(change: Record) -> str:
    """One plain-text line saying what the change does (no sign, no colour, no refusal)."""
    make = _DESCRIBE.get(change["kind"])
    return make(change) if make else f"{value_text(change['kind'])} {value_text(change['after'])}"
