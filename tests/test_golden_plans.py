"""Runs every golden case end to end: seed a real PostgreSQL, load the manifests, plan, compare."""

from __future__ import annotations

import os

import pytest

from expctl.adapters.store.db import connect, init_schema
from expctl.app.service import make_plan
from expctl.app.settings import Settings
from expctl.core.profiles import gateway_profile
from expctl.core.render.json_plan import render_json
from expctl.core.render.markdown import render_markdown
from expctl.core.render.text import render_text
from tests.golden import CASES_DIR, TEST_BYOK_KEY_B64, case_names, load_case, seed, summarise


@pytest.mark.parametrize("name", case_names())
def test_golden_plan(name: str, db_url: str) -> None:
    case = load_case(name)
    with connect(db_url) as conn, conn.begin():
        init_schema(conn)
        seed(conn, case)
    env = {str(k): str(v) for k, v in case["env"].items()}
    if case.get("byok", True):
        env["BYOK_ENCRYPTION_KEY"] = TEST_BYOK_KEY_B64
    case_dir = CASES_DIR / name
    manifests = case_dir / "manifests"
    manifests.mkdir(exist_ok=True)
    profile = gateway_profile(case.get("profile"))
    settings = Settings(manifests, db_url, env=env, base_dir=case_dir, gateway_profile=profile)
    plan = make_plan(settings, prune=bool(case.get("prune", False)))
    record = plan.to_record()
    got = summarise(record)
    expected_path = case_dir / "expected.txt"
    if os.environ.get("UPDATE_GOLDEN") or not expected_path.exists():
        expected_path.write_text(got)
    assert got == expected_path.read_text()
    # Every rendering works on every case and never shows a secret given to the run.
    renderings = [render_text(record), render_markdown(record), render_json(record)]
    for secret in env.values():
        assert all(secret not in text for text in renderings)


def test_every_case_has_expectations() -> None:
    missing = [n for n in case_names() if not (CASES_DIR / n / "expected.txt").exists()]
    assert not missing or os.environ.get("UPDATE_GOLDEN"), missing
    assert len(case_names()) >= 20
