"""Status renderers: hostile names stay inert in text and markdown, tables keep their columns, and
the markdown plan's observed block is escaped and bounded."""

from __future__ import annotations

import re
from typing import Any

from expctl.core.render.markdown import render_markdown
from expctl.core.render.status_markdown import render_status_markdown
from expctl.core.render.status_text import render_status_text
from tests.render.plans import actual, desired, dvar, plan_record


def _record(label: str) -> dict[str, Any]:
    counts = {"requests": 10, "users": 4, "anonymous_requests": 0, "errors": 1, "error_rate": 0.1,
              "cost_microdollars": 1_234_567, "tokens": {"input": 1_500, "output": 2_000_000, "cache_write": 0,
                                                         "cache_hit": 0},
              "first_request_at": "2026-11-09T00:00:00Z", "last_request_at": "2026-11-09T01:00:00Z"}
    variant = {"variant_id": "00000000-0000-4000-8000-000000000001", "label": label, "weight": 1,
               "expected_share": 1.0, "observed_share": 1.0, "mixed_users": 0, **counts,
               "versions": [{"version_id": "00000000-0000-4000-8000-000000000002", "current": True,
                             "effective_at": "2026-11-01T00:00:00Z", "superseded_at": None, **counts}]}
    experiment = {"name": "exp", "managed": True, "experiment_id": "00000000-0000-4000-8000-000000000003",
                  "title": "T", "public_model_id": "preview/x", "status": "active", "archived": False,
                  "window": {"since": "2026-11-09T00:00:00Z", "until": "2026-11-10T00:00:00Z", "default_since": False},
                  "totals": counts, "srm": {"units": 4, "verdict": "not_applicable", "threshold": 0.001,
                                            "chi_square": None, "df": None, "p_value": None},
                  "variants": [variant], "flags": []}
    return {"format_version": 1, "gateway_profile": "2026-11",
            "summary": {"experiments": 1, "flagged": 0, "flags": {}},
            "rules": {"srm_threshold": 0.001}, "experiments": [experiment]}


def test_hostile_labels_are_inert() -> None:
    record = _record("evil\x1b[31m|<img src=x>*b*")
    text = render_status_text(record)
    assert "\x1b" not in text and "\\x1b[31m" in text
    markdown = render_status_markdown(record)
    assert "<img" not in markdown and "&lt;img" in markdown and "\\*b\\*" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len({len(re.findall(r"(?<!\\)\|", row)) for row in rows}) == 1  # the bar's `|` is escaped too
    assert "$1.23" in text and "1.5k/2M" in text


def test_plan_observed_block_is_escaped_and_bounded() -> None:
    record = plan_record([desired("swap", variants=(dvar("control", internal_id="rc2"), dvar("treatment")))],
                         [actual("swap")])
    observed = {f"exp-{i:02d}": "since x: split a 50% / b 50%, SRM ok <b>" for i in range(25)}
    out = render_markdown(record, observed=observed)
    section = out[out.index("#### Observed traffic"):].split("\n#### ", 1)[0]
    assert section.count("\n- **exp-") == 20 and "… and 5 more" in section
    assert "<b>" not in section and "&lt;b&gt;" in section
    assert "Observed traffic" not in render_markdown(record)
