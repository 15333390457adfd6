"""Which keys of two JSON objects differ, nested objects flattened to dotted keys — pure core.

Renderers use it to show a `metadata` change as the keys that changed rather than two JSON blobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def leaves(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists, scalars and empty objects are leaves."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            flat.update(leaves(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _same(a: Any, b: Any) -> bool:
    # 1 and true (or 1 and 1.0) are equal in Python but not to the gateway's JSON reader.
    return type(a) is type(b) and a == b


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf added, removed or changed: `after`'s order, then removals.
    A missing side is None."""
    old, new = leaves(before), leaves(after)
    keys = list(new) + [k for k in old if k not in new]
    return [(k, old.get(k), new.get(k)) for k in keys if k not in old or k not in new or not _same(old[k], new[k])]
