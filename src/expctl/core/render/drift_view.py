"""Wording for where a plan goes (environment, scope, `--only` target) and for drift — pure core,
shared by the text and markdown renderers (docs/design.md#drift, docs/design.md#scopes).

Records saved before these fields existed render as before: every lookup has a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Record = Mapping[str, Any]

DEFAULT_SCOPE = "default"  # mirrors expctl.core.plan; repeated so a saved record needs no Plan


def is_held(change: Record) -> bool:
    """Drift this plan keeps: listed, never applied."""
    drift = change.get("drift")
    return isinstance(drift, Mapping) and bool(drift.get("held"))


def context_parts(record: Record) -> list[str]:
    """`environment staging`, `scope team-a` (when not the default), `partial: only 'canary'`."""
    parts = []
    if record.get("environment"):
        parts.append(f"environment {record['environment']}")
    if record.get("scope") not in (None, DEFAULT_SCOPE):
        parts.append(f"scope {record['scope']}")
    target = record.get("target")
    if target:
        parts.append("partial: only " + ", ".join(repr(str(t)) for t in target))
    return parts


def partial_note(record: Record) -> str | None:
    if not record.get("target"):
        return None
    return ("Partial plan (--only): manifests and experiments not targeted are neither changed nor treated "
            "as removed.")


def drift_note(record: Record, lead: str = "; ") -> str:
    """`; 2 drift (1 held, not applied)` for the verdict line (`lead` before it)."""
    summary = record.get("summary", {})
    drift, held = int(summary.get("drift", 0) or 0), int(summary.get("held", 0) or 0)
    if not drift:
        return ""
    return f"{lead}{drift} drift ({held} held, not applied)" if held else f"{lead}{drift} drift (reverted)"


def drift_text(change: Record) -> str:
    """`drift: changed outside expctl at …, by …; held (--drift=revert restores the manifest)`."""
    drift = change.get("drift")
    if not isinstance(drift, Mapping):
        return ""
    when = f" at {drift['at']}" if drift.get("at") else ""
    who = f" by {drift['by']}" if drift.get("by") else ""
    verdict = ("held: the database keeps it (--drift=revert restores the manifest's value)" if drift.get("held")
               else "reverted to the manifest's value")
    return f"drift: changed outside expctl{when}{who}; {verdict}"
