"""What the gateway's request path would silently break, found at validate time — adapter.

Two facts about the gateway (docs/design.md#manifests): it lower-cases the requested model id
before the membership check, so a `public_model_id` with an upper-case letter is never reached;
and it is JavaScript, so an integer beyond ±(2^53 - 1) in JSON it reads arrives
rounded while the plan shows the exact number. That JSON is the upstream and, under profile
2026-11, the experiment's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from expctl.adapters.manifest.profile_rules import upstreams
from expctl.adapters.manifest.yamlread import Document, walk
from expctl.core.codes import problem
from expctl.core.errors import Problem
from expctl.core.manifest.rules import shown
from expctl.core.manifest.secretscan import find_key_like

MAX_SAFE_INTEGER = 2**53 - 1

Path = tuple[str | int, ...]


def reachability_problems(doc: Document, metadata: bool = True) -> list[Problem]:
    """`metadata`: whether the gateway reads the document's metadata (else E213 says it all)."""
    data = doc.data
    problems = []
    public_id = data.get("public_model_id")
    # A key-like id is already E303, and never a real id.
    if isinstance(public_id, str) and public_id != public_id.lower() and not find_key_like(public_id):
        problems.append(problem(
            "E210", doc.location_of(("public_model_id",)),
            f"public_model_id {shown(public_id)} has upper-case letters: the gateway lower-cases the "
            "requested model id, so no client could reach this experiment",
            f"write it in lower case: {shown(public_id.lower())}"))
    read_by_gateway: list[tuple[Path, Any]] = [(("metadata",), data.get("metadata"))] if metadata else []
    for start, value in read_by_gateway + upstreams(doc):
        problems += [
            problem("E211", doc.location_of(path), f"{number} is beyond ±{MAX_SAFE_INTEGER}: the gateway "
                    "reads this JSON in JavaScript and would get a rounded number")
            for path, number in _unsafe_integers(value, start)]
    return problems


def _unsafe_integers(value: Any, path: Path) -> Iterator[tuple[Path, int]]:
    for here, item, is_key in walk(value, path):
        if not is_key and isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INTEGER:
            yield here, item
