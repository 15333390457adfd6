"""The golden cases again, through the pure planner only: no database, no crypto, no clock.

Actual state is built straight from each case's `state.yaml`; key comparisons come from comparing
the seeded plaintext with the case's secrets, which is what the edge does after decrypting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expctl.adapters.crypto import fingerprint
from expctl.adapters.manifest.load import load_directory
from expctl.core import lifecycle
from expctl.core.planner import build_plan
from expctl.core.profiles import gateway_profile
from expctl.core.state import ActualExperiment, ActualState, ActualVariant, ActualVersion, KeyComparison
from expctl.core.variant_plan import match_variants
from tests.golden import CASES_DIR, _stable_id, case_names, load_case, summarise


def _actual(case: dict[str, object]) -> ActualState:
    experiments = []
    for index, exp in enumerate(case["experiments"]):  # type: ignore[arg-type, var-annotated]
        exp_id = exp.get("id") or _stable_id("exp", str(index), exp["name"])
        variants = []
        for v_index, v in enumerate(exp.get("variants", [])):
            stored = v.get("encrypted_api_key") or {"plain": v.get("key", "unused-key")}
            version = ActualVersion(f"ver-{v_index}", v["upstream"], stored) \
                if "upstream" in v else None
            variants.append(ActualVariant(_stable_id("var", exp_id, str(v_index)), v["label"], v["weight"], version))
        experiments.append(ActualExperiment(
            id=exp_id, public_model_id=exp["public_model_id"], name=exp["name"], description=exp.get("description"),
            status=exp.get("status", "draft"), is_archived=exp.get("archived", False), variants=tuple(variants),
            managed_name=exp.get("managed"), metadata=exp.get("metadata")))
    return ActualState(tuple(experiments))


@pytest.mark.parametrize("name", case_names())
def test_pure_planner_agrees_with_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = load_case(name)
    case_dir = CASES_DIR / name
    monkeypatch.chdir(case_dir)
    profile = gateway_profile(case.get("profile"))
    loaded = load_directory(Path("manifests"), profile=profile)
    assert not loaded.problems
    state = _actual(case)
    env = {str(k): str(v) for k, v in case["env"].items()}
    bound = state.by_managed_name()
    checks = {}
    for desired in loaded.experiments:
        if desired.status == "completed":
            continue  # as the edge: secrets of completed experiments are never resolved
        pairs, _ = match_variants(desired, bound.get(desired.name))
        for variant, row in pairs:
            secret = env.get(variant.api_key.name)
            wanted = fingerprint(secret) if secret else None
            if secret and row is not None and row.current_version is None:
                checks[(desired.name, variant.label)] = KeyComparison("changed", wanted)
            elif secret is None or not case.get("byok", True) or row is None or row.current_version is None:
                checks[(desired.name, variant.label)] = KeyComparison("unknown", wanted)
            elif "plain" not in row.current_version.encrypted_api_key:
                checks[(desired.name, variant.label)] = KeyComparison("unreadable", wanted)
            else:
                stored = str(row.current_version.encrypted_api_key["plain"])
                checks[(desired.name, variant.label)] = KeyComparison(
                    "same" if stored == secret else "changed", wanted, fingerprint(stored))
    plan = build_plan(loaded.experiments, state, checks, prune=bool(case.get("prune", False)),
                      byok_available=bool(case.get("byok", True)), profile=profile)
    got = summarise(plan.to_record()).replace(str(Path("manifests")) + "/", "")
    assert got == (case_dir / "expected.txt").read_text()


def test_transition_table_covers_every_pair() -> None:
    pairs = {(a, b) for a in lifecycle.STATUSES for b in lifecycle.STATUSES if a != b}
    assert set(lifecycle.TRANSITIONS) == pairs
    allowed = {pair for pair, rule in lifecycle.TRANSITIONS.items() if rule.allowed}
    assert allowed == {("draft", "active"), ("active", "paused"), ("paused", "active"),
                       ("active", "completed"), ("paused", "completed")}
    assert all(rule.refusal for rule in lifecycle.TRANSITIONS.values() if not rule.allowed)


def test_edit_table_matches_the_contract() -> None:
    expected = {
        lifecycle.Edit.METADATA: "draft active paused completed",
        lifecycle.Edit.EXPERIMENT_METADATA: "draft active paused",
        lifecycle.Edit.PUBLIC_MODEL_ID: "draft",
        lifecycle.Edit.VARIANT_STRUCTURE: "draft",
        lifecycle.Edit.RENAME_VARIANT: "draft active paused",
        lifecycle.Edit.HOT_SWAP: "draft active paused",
        lifecycle.Edit.ROTATE_KEY: "draft active paused",
        lifecycle.Edit.ARCHIVE: "draft paused completed",
        lifecycle.Edit.UNARCHIVE: "draft active paused completed",
        lifecycle.Edit.DELETE: "draft",
    }
    assert {edit: set(v.split()) for edit, v in expected.items()} == {e: set(s) for e, s in lifecycle.EDITS.items()}
