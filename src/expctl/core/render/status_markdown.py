"""Markdown rendering of a status record, for a pull request or an issue comment — pure core.

Every user text is escaped with the plan renderer's `escape` (no HTML, no markdown syntax, no `|`).
A flagged experiment is marked ⚠️ in its heading; each flag is a bullet with its likely causes.
"""

from __future__ import annotations

from expctl.core.render.markdown import escape
from expctl.core.render.status_text import (
    Record,
    bar,
    dollars,
    experiment_title,
    headline,
    number,
    percent,
    srm_text,
    tokens,
    version_text,
    window_text,
)

MARKER = "<!-- expctl-status -->"
_HEAD = ("| Variant | Weight | Declared | Observed | Split (users) | Users | Requests | Machine/ip requests "
         "| Error rate | Cost | Tokens in/out |\n|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|\n")


def _bar(variant: Record) -> str:
    # A `|` splits a table cell even inside a code span unless escaped (GitHub-flavoured markdown).
    return "`" + bar(variant["observed_share"], variant["expected_share"]).replace("|", "\\|") + "`"


def _row(variant: Record) -> str:
    cells = [escape(variant["label"]), str(variant["weight"]), percent(variant["expected_share"]),
             percent(variant["observed_share"]), _bar(variant),
             number(variant["users"]), number(variant["requests"]), number(variant["anonymous_requests"]),
             percent(variant["error_rate"]), escape(dollars(variant["cost_microdollars"])), tokens(variant)]
    return "| " + " | ".join(cells) + " |\n"


def _experiment(experiment: Record) -> str:
    icon = "⚠️ " if experiment["flags"] else "✅ "
    parts = [f"#### {icon}{escape(experiment_title(experiment))}\n",
             f"Window {escape(window_text(experiment))}\n"]
    variants = experiment["variants"]
    if variants:
        parts.append("\n" + _HEAD + "".join(_row(v) for v in variants) + "\n")
        parts += [f"- {escape(v['label'])}: {escape(version_text(version))}\n"
                  for v in variants for version in v["versions"]]
    parts.append(f"\n**{escape(srm_text(experiment))}**\n")
    for flag in experiment["flags"]:
        parts.append(f"- ⚠️ **{flag['kind']}**: {escape(flag['message'])}\n")
        parts += [f"  - likely cause: {escape(cause)}\n" for cause in flag["causes"]]
    return "".join(parts)


def render_status_markdown(record: Record) -> str:
    blocks = [f"{MARKER}\n### expctl status\n**{escape(headline(record))}**\n"]
    blocks += [_experiment(e) for e in record["experiments"]]
    if not record["experiments"]:
        blocks.append("No experiment to report.\n")
    return "\n".join(blocks)
