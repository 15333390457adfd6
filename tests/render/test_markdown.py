"""PR-comment rendering: verdict, never-cut sections, escaping, tables and the 65,536-char fit."""

from __future__ import annotations

import re
from typing import Any

import pytest

from expctl.core.render.markdown import GITHUB_COMMENT_LIMIT, MARKER, render_markdown
from tests.render.plans import actual, desired, dvar, many_record, plan_record, varied_record

HINT = "see the plan.json artifact"


def _section(out: str, title: str) -> str:
    """The text of a `#### title…` section, up to the next heading."""
    start = out.index("#### " + title)
    end = out.find("\n#### ", start + 1)
    return out[start:] if end < 0 else out[start:end]


def _assert_tables_well_formed(out: str) -> None:
    rows = [line for line in out.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
    assert len(widths) <= 1, widths


def test_header_and_verdict() -> None:
    wanted = [desired("done", status="completed"),
              desired("swap", variants=(dvar("control", internal_id="rc2"), dvar("treatment")))]
    out = render_markdown(plan_record(wanted, [actual("done"), actual("swap")]))
    lines = out.splitlines()
    assert lines[:3] == [MARKER, "### expctl plan", "**2 changes, 1 irreversible, 1 traffic shift, 0 refused**"]
    assert re.search(r"^Plan `sha256:[0-9a-f]{64}` \(gateway profile 2026-11\)$", out, re.M)


def test_no_changes() -> None:
    out = render_markdown(plan_record([desired("steady")], [actual("steady")]))
    assert out.splitlines()[2] == "**No changes.**"
    assert "#### Summary" not in out
    assert "<details>" not in out


def test_irreversible_and_traffic_section() -> None:
    wanted = [desired("done", status="completed"),
              desired("drafty", status="draft", variants=(dvar("control", 1), dvar("treatment", 3))),
              desired("fresh")]
    out = render_markdown(plan_record(wanted, [actual("done"), actual("drafty", status="draft")]))
    section = _section(out, "Irreversible actions and traffic shifts")
    bullets = section.splitlines()[1:]
    assert bullets[0] == "- ⚠️ **complete** done (preview/done): status: active → completed"
    assert bullets[1] == ("- 🔀 **activate** fresh (preview/fresh): status: draft → active; "
                          "traffic control 0% → 50%, treatment 0% → 50%")
    assert "drafty" not in section  # a draft's reweight shifts no live traffic
    assert out.index("#### Irreversible") < out.index("#### Summary") < out.index("<details>")


def test_refusals_name_location_and_alternative() -> None:
    wanted = [desired("frozen", variants=(dvar("control", 1), dvar("treatment", 2)))]
    out = render_markdown(plan_record(wanted, [actual("frozen")]))
    assert out.splitlines()[2].startswith("❌ **1 refused: nothing will be applied**")
    refusals = _section(out, "❌ Refused")
    assert "- **frozen** at `experiments.d/test.yaml:11` — variant treatment: weight 1 → 2: " in refusals
    assert "create a new experiment" in refusals
    assert "| frozen | preview/frozen | reweight | 1 |" in out


def test_summary_table_and_details() -> None:
    out = render_markdown(varied_record())
    assert "| Experiment | Public model id | Actions | Refused |" in out
    assert "| brand-new | preview/brand-new | create, add variant x2, activate | 0 |" in out
    assert "<details><summary>brand-new (preview/brand-new): 4 changes</summary>" in out
    assert out.count("<details>") == out.count("</details>")
    assert "#### Unmanaged experiments (never touched): 1\n- admin (preview/admin, active)" in out
    assert "**Cache membership:** " in out
    _assert_tables_well_formed(out)


def test_user_text_is_escaped() -> None:
    wanted = [desired("evil", public_model_id="preview/a|b<script>&", display_name="x\n# heading | [link](http://x)")]
    out = render_markdown(plan_record(wanted))
    assert "<script>" not in out
    assert "preview/a\\|b&lt;script&gt;&amp;" in out
    assert "\n# heading" not in out
    assert "\\[link\\]" in out
    _assert_tables_well_formed(out)


def test_details_dropped_first_with_a_pointer_to_the_artifact() -> None:
    record = many_record(50, irreversible=5)
    full = render_markdown(record)
    assert "<details>" in full
    assert len(full) <= GITHUB_COMMENT_LIMIT
    limit = len(full) - 100
    small = render_markdown(record, max_chars=limit, artifact_hint=HINT)
    assert len(small) <= limit
    assert "<details>" not in small
    assert f"_Per-change details omitted to fit in a comment: {HINT}._" in small
    assert small.count("\n| exp-") == 50  # the table is still whole


def test_table_collapses_when_it_does_not_fit() -> None:
    record = many_record(50, irreversible=5, swap_status="draft")
    out = render_markdown(record, max_chars=2000, artifact_hint=HINT)
    assert len(out) <= 2000
    kept = out.count("\n| exp-")
    assert 0 < kept < 50
    assert f"… and {50 - kept} more experiments (see the plan artifact)" in out
    assert all(f"| exp-{i:05d} |" in out for i in range(5))  # irreversible rows sort first
    _assert_tables_well_formed(out)


@pytest.mark.parametrize(("count", "irreversible"), [(1, 1), (50, 5), (5000, 20)])
def test_fits_a_github_comment_and_keeps_the_summary(count: int, irreversible: int) -> None:
    record: dict[str, Any] = many_record(count, irreversible)
    out = render_markdown(record, artifact_hint=HINT)
    assert len(out) <= GITHUB_COMMENT_LIMIT
    shifts = count - irreversible
    tally = f"{count} change{'s' if count > 1 else ''}, {irreversible} irreversible"
    assert out.splitlines()[2].startswith(f"**{tally}, {shifts} traffic shift")
    section = _section(out, "Irreversible actions and traffic shifts")
    for i in range(irreversible):
        assert f"- ⚠️ **complete** exp-{i:05d} (preview/exp-{i:05d}): status: active → completed" in section
    for i in range(irreversible, count):  # every hot-swapped experiment is still named
        assert f"exp-{i:05d}" in section
    _assert_tables_well_formed(out)


def test_traffic_shifts_only_counted_when_even_names_do_not_fit() -> None:
    record = many_record(300, irreversible=3)
    out = render_markdown(record, max_chars=1500)
    assert len(out) <= 1500
    section = _section(out, "Irreversible actions and traffic shifts")
    assert "- 🔀 **hot-swap** in 297 experiments (see the table and the plan artifact)" in section
    assert all(f"**complete** exp-{i:05d}" in section for i in range(3))
