"""Plan refusals (errors) and api key findings (warnings) as GitHub workflow annotations on the
manifest lines — pure core."""

from __future__ import annotations

from typing import Any

from expctl.core.render.problems import github_annotation
from expctl.core.render.text import attention_groups, attention_note, profile_note

# Where an annotation without a manifest location is shown.
_NOWHERE: dict[str, Any] = {"path": "experiments.d", "line": 1, "col": 1}


def render_github(record: dict[str, Any]) -> str:
    lines = []
    for experiment in record["experiments"]:
        for change in experiment["changes"]:
            if change["allowed"]:
                continue
            location = change["location"] or _NOWHERE
            title = f"expctl: {change['kind']} refused"
            message = f"{experiment['name']}: {change['reason']}"
            lines.append(github_annotation("error", location["path"], location["line"], location["col"],
                                           title, message))
    for message, items in attention_groups(record):
        # One annotation per finding, on its first place: GitHub shows only a few per step.
        location = items[0]["location"] or _NOWHERE
        places = ", ".join(f"{i['experiment']}/{i['variant']}" for i in items[:20])
        more = f" and {len(items) - 20} more" if len(items) > 20 else ""
        lines.append(github_annotation("warning", location["path"], location["line"], location["col"],
                                       "expctl: api key", f"{message} ({places}{more})"))
    summary = record["summary"]
    lines.append(f"{summary['total']} change(s), {summary['refused']} refused{profile_note(record)}"
                 f"{attention_note(record)}")
    return "\n".join(lines) + "\n"
