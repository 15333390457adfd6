"""Plan refusals as GitHub workflow annotations on the manifest lines — pure core."""

from __future__ import annotations

from typing import Any

from expctl.render.problems import github_annotation


def render_github(record: dict[str, Any]) -> str:
    lines = []
    for experiment in record["experiments"]:
        for change in experiment["changes"]:
            if change["allowed"]:
                continue
            location = change["location"] or {"path": "experiments.d", "line": 1, "col": 1}
            title = f"expctl: {change['kind']} refused"
            message = f"{experiment['name']}: {change['reason']}"
            lines.append(github_annotation("error", location["path"], location["line"], location["col"],
                                           title, message))
    summary = record["summary"]
    lines.append(f"{summary['total']} change(s), {summary['refused']} refused")
    return "\n".join(lines) + "\n"
