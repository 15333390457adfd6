"""Terminal rendering of real plans: order, wording, refusals, shares, colours and secrets."""

from __future__ import annotations

import copy
import json
from typing import Any

from expctl.adapters.crypto import fingerprint
from expctl.core.render.json_plan import render_json
from expctl.core.render.markdown import render_markdown
from expctl.core.render.text import render_text
from expctl.core.state import KeyComparison
from tests.render.plans import actual, desired, dvar, plan_record, varied_record

CANARY = "sk-live-CANARY-7f3a9d0c2b41e8"  # only ever the input of a fingerprint


def test_no_changes() -> None:
    record = plan_record([desired("steady")], [actual("steady")])
    out = render_text(record)
    assert out.splitlines()[0].startswith("expctl plan sha256:")
    assert out.splitlines()[1] == "No changes."
    assert "steady" not in out  # an experiment without changes or notes is not listed
    assert "REFUSED" not in out


def test_create_and_activate() -> None:
    out = render_text(plan_record([desired("fresh")]))
    assert "Plan: 4 changes (0 irreversible, 1 traffic shift), 0 refused" in out
    assert "fresh (preview/fresh, new):" in out
    assert "  + create experiment fresh on preview/fresh (as draft)" in out
    assert "  + variant control (weight 1, upstream rc1, api key sha256:000000000000)" in out
    assert "  ~ status: draft -> active" in out
    assert "traffic: control 0% -> 50%, treatment 0% -> 50%" in out


def test_irreversible_and_traffic_shifts_come_first() -> None:
    wanted = [
        desired("a-swap", variants=(dvar("control", internal_id="rc2"), dvar("treatment"))),
        desired("z-done", status="completed"),
    ]
    out = render_text(plan_record(wanted, [actual("a-swap"), actual("z-done")]))
    lines = out.splitlines()
    assert "Plan: 2 changes (1 irreversible, 1 traffic shift), 0 refused" in lines
    section = lines.index("Irreversible and traffic-shifting:")
    assert lines[section + 1] == "  z-done: ~ status: active -> completed  [irreversible]"
    assert lines[section + 2] == (
        "  a-swap: ~ variant control: hot-swap upstream internal_id rc1 -> rc2  [traffic shift]")
    assert section < lines.index("a-swap (preview/a-swap, id " + actual("a-swap").id + "):")


def test_refused_change_shows_reason_and_location() -> None:
    wanted = [desired("frozen", variants=(dvar("control", 1), dvar("treatment", 2)))]
    out = render_text(plan_record(wanted, [actual("frozen")]))
    assert "1 refused: nothing will be applied" in out.splitlines()[1]
    refused = next(line for line in out.splitlines() if "REFUSED" in line)
    assert refused.startswith("  ! REFUSED variant treatment: weight 1 -> 2: ")
    assert "create a new experiment" in refused  # the legal alternative
    assert refused.endswith("(experiments.d/test.yaml:11:13)")
    assert "traffic (blocked by the refusal): control 50% -> 33.3%, treatment 50% -> 66.7%" in out


def test_traffic_shares_before_and_after() -> None:
    wanted = [desired("drafty", status="draft", variants=(dvar("control", 1), dvar("treatment", 3)))]
    out = render_text(plan_record(wanted, [actual("drafty", status="draft")]))
    assert "  ~ variant treatment: weight 1 -> 3" in out
    assert "  traffic: control 50% -> 25%, treatment 50% -> 75%" in out


def test_notes_unmanaged_and_cache() -> None:
    rows = [actual("gone", status="draft"), actual("admin", managed=False, public_model_id="preview/admin")]
    out = render_text(plan_record([], rows, membership=("preview/stale",)))
    assert "No changes." in out
    assert "  note: manifest removed: this draft is deleted only with --prune" in out
    assert "unmanaged (never touched): admin (preview/admin, active)" in out
    assert "cache membership: 1 -> 1 public id (+preview/admin; -preview/stale); drift: " in out


def _rotation_record() -> dict[str, Any]:
    wanted = [desired("rot"), desired("newbie")]
    checks = {
        ("rot", "control"): KeyComparison("changed", fingerprint(CANARY), fingerprint("old")),
        ("newbie", "control"): KeyComparison("unknown", None),
    }
    return plan_record(wanted, [actual("rot")], key_checks=checks)


def test_rotate_key_shows_old_and_new_fingerprints_only() -> None:
    out = render_text(_rotation_record())
    assert f"  ~ variant control: api key: changed {fingerprint('old')} -> {fingerprint(CANARY)}" in out
    assert "api key checked at apply (env:KEY_CONTROL)" in out


def test_no_rendering_ever_contains_the_secret() -> None:
    for record in (_rotation_record(), varied_record()):
        outputs = [render_text(record), render_text(record, color=True), render_json(record),
                   render_markdown(record), render_markdown(record, max_chars=2000)]
        assert all(CANARY not in out for out in outputs)


def test_a_tampered_record_cannot_make_the_renderer_print_a_key() -> None:
    record = copy.deepcopy(_rotation_record())
    change = next(c for e in record["experiments"] for c in e["changes"]
                  if c["kind"] == "rotate_key")
    change["after"] = CANARY
    out = render_text(record) + render_markdown(record)
    assert CANARY not in out
    assert f"api key: changed {fingerprint('old')} -> (not shown)" in out


def test_colour_only_on_request_and_control_characters_escaped() -> None:
    wanted = [desired("fresh", display_name="evil\x1b[2Jname"),
              desired("frozen", variants=(dvar("control", 1), dvar("treatment", 2)))]
    record = plan_record(wanted, [actual("frozen")])
    plain, coloured = render_text(record), render_text(record, color=True)
    assert "\x1b" not in plain
    assert "evil\\x1b[2Jname" in plain
    assert "\x1b[32m  + create experiment" in coloured
    assert "\x1b[1m\x1b[31m  ! REFUSED" in coloured
    assert coloured.count("\x1b[2J") == 0
    assert "\u202e" not in render_text(plan_record([desired("bidi", display_name="abc\u202edef")]))


def test_saved_json_plan_renders_the_same() -> None:
    record = varied_record()
    assert render_text(json.loads(render_json(record))) == render_text(record)


def test_verdicts_count_keys_checked_at_apply() -> None:
    d = desired("exp")
    unknown = {("exp", "control"): KeyComparison("unknown", None), ("exp", "treatment"): KeyComparison("unknown", None)}
    record = plan_record([d], [actual("exp")], key_checks=unknown)
    assert "2 api keys checked at apply" in render_text(record).splitlines()[1]
    assert "2 api keys checked at apply" in render_markdown(record)
