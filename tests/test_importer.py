"""`expctl import` against a real PostgreSQL: rows made as the admin UI makes them become manifests."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from expctl.adapters import crypto
from expctl.adapters.manifest.load import load_directory
from expctl.adapters.store.db import connect
from expctl.app.import_names import env_var_name, slugify, unique
from expctl.cli import run
from expctl.core.manifest.model import SCHEMA_URL_COMMENT

BYOK = base64.b64encode(bytes(range(32))).decode()


@dataclass
class Row:
    """An experiment as the admin UI inserts it; variants are (label, weight, upstream, api key)."""

    public_model_id: str
    name: str
    status: str = "active"
    variants: list[tuple[str, int, dict[str, Any], str]] = field(default_factory=list)
    description: str | None = None
    archived: bool = False
    metadata: dict[str, Any] | None = None


def upstream(internal_id: str, **extra: Any) -> dict[str, Any]:
    return {"internal_id": internal_id, "base_url": "https://partner.example.com/v1", **extra}


def insert(db_url: str, row: Row) -> str:
    key = base64.b64decode(BYOK)
    with connect(db_url) as conn, conn.begin():
        exp_id = str(conn.execute(text(
            "INSERT INTO model_experiment (public_model_id, name, description, status, is_archived, started_at, "
            "metadata) VALUES (:p, :n, :d, :s, :a, CASE WHEN :s = 'draft' THEN NULL ELSE now() END, "
            "CAST(:m AS jsonb)) RETURNING id"),
            {"p": row.public_model_id, "n": row.name, "d": row.description, "s": row.status, "a": row.archived,
             "m": None if row.metadata is None else json.dumps(row.metadata)},
        ).scalar_one())
        for label, weight, up, api_key in row.variants:
            variant_id = conn.execute(text(
                "INSERT INTO model_experiment_variant (experiment_id, label, weight) VALUES (:e, :l, :w) RETURNING id"),
                {"e": exp_id, "l": label, "w": weight}).scalar_one()
            conn.execute(text(
                "INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, effective_at) "
                "VALUES (:v, CAST(:u AS jsonb), CAST(:k AS jsonb), now() - interval '1 minute')"),
                {"v": variant_id, "u": json.dumps(up), "k": json.dumps(crypto.encrypt_api_key(key, api_key))})
    return exp_id


def expctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def bindings(db_url: str) -> dict[str, str]:
    with connect(db_url) as conn:
        rows = conn.execute(text("SELECT name, experiment_id::text FROM expctl_binding")).all()
    return dict(rows)


META = {"context_length": 200000, "max_completion_tokens": 64000,
        "opencode_settings": {"ai_sdk_provider": "openai-compatible", "family": "gpt"}}
FOO = Row("preview/preview-foo", "Preview Foo RC bake-off", "active", [
    ("control", 1, upstream("rc1", remove_cache_breakpoints=True), "sk-test-control-0001"),
    ("treatment", 3, upstream("rc2", extra_body={"reasoning": {"effort": "medium"}, "n": 1.5}), "sk-test-treat-0002"),
], description="Compare rc1 and rc2", metadata=META)
# The same experiment as the 2026-05 gateway stored it: opencode settings in the upstream, no metadata.
FOO_2026_05 = Row("preview/preview-foo", "Preview Foo RC bake-off", "active", [
    ("control", 1, upstream("rc1", opencode_settings={"ai_sdk_provider": "openai-compatible"}), "sk-test-control-0001"),
], description="Compare rc1 and rc2")
BAR = Row("preview/preview-bar", "Preview Bar", "paused", [("only", 1, upstream("bar"), "bar-key")], archived=True)


def plan_json(capsys: pytest.CaptureFixture[str], out_dir: Path, db_url: str, redis_url: str) -> tuple[int, Any]:
    code, out, _ = expctl(capsys, "plan", "--dir", str(out_dir), "--database-url", db_url, "--redis-url", redis_url,
                          "--detailed-exitcode", "--format", "json")
    return code, json.loads(out)


def test_import_writes_adopting_manifests_and_the_adoption_is_planned_then_applied(
    db: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    foo_id, bar_id = insert(db, FOO), insert(db, BAR)
    out_dir = tmp_path / "experiments.d"
    code, out, err = expctl(capsys, "import", "--out-dir", str(out_dir), "--database-url", db)
    assert code == 0, err
    assert bindings(db) == {}  # import never writes to the database
    assert "Nothing was written to the database" in out
    text_ = (out_dir / "preview-foo-rc-bake-off.yaml").read_text()
    assert text_.splitlines()[0] == SCHEMA_URL_COMMENT
    assert "EXPCTL_KEY_PREVIEW_FOO_RC_BAKE_OFF_CONTROL" in out
    assert "sk-test" not in text_ + out + err
    loaded = load_directory(out_dir)
    assert loaded.problems == ()
    rc1 = text_[text_.index("internal_id: rc1"):]
    assert rc1.index("base_url") < rc1.index("remove_cache_breakpoints") < rc1.index("api_key")  # the model's order
    assert {e.name: e.metadata for e in loaded.experiments} == {"preview-foo-rc-bake-off": META, "preview-bar": None}
    assert text_.index("archived:") < text_.index("metadata:") < text_.index("variants:")
    assert f"adopt: {foo_id}" in text_

    code, plan = plan_json(capsys, out_dir, db, redis_url)
    assert code == 2
    changes = [c for e in plan["experiments"] for c in e["changes"]]
    assert sorted(c["after"]["experiment_id"] for c in changes if c["kind"] == "adopt_experiment") == sorted(
        [foo_id, bar_id])
    keys = [c for c in changes if c["kind"] != "adopt_experiment"]
    assert {c["kind"] for c in keys} == {"rotate_key"} and len(keys) == 3
    assert all(c["reason"] == "checked at apply" and c["allowed"] for c in keys)
    assert {e["experiment_id"] for e in plan["experiments"]} == {foo_id, bar_id}

    monkeypatch.setenv("EXPCTL_KEY_PREVIEW_FOO_RC_BAKE_OFF_CONTROL", "sk-test-control-0001")
    monkeypatch.setenv("EXPCTL_KEY_PREVIEW_FOO_RC_BAKE_OFF_TREATMENT", "sk-test-treat-0002")
    monkeypatch.setenv("EXPCTL_KEY_PREVIEW_BAR_ONLY", "bar-key")
    monkeypatch.setenv(crypto.BYOK_ENV, BYOK)
    code, plan = plan_json(capsys, out_dir, db, redis_url)
    assert plan["summary"]["total"] == plan["summary"]["adopt_experiment"] == 2  # the keys match the stored ones
    code, out, err = expctl(capsys, "reconcile", "--dir", str(out_dir), "--database-url", db, "--redis-url",
                            redis_url, "--auto-approve")
    assert code == 0, err
    assert bindings(db) == {"preview-foo-rc-bake-off": foo_id, "preview-bar": bar_id}
    code, plan = plan_json(capsys, out_dir, db, redis_url)
    assert code == 0, plan["summary"]
    assert plan["unmanaged"] == []


def test_public_model_id_filter_and_unknown_id(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    insert(db, FOO)
    bar_id = insert(db, BAR)
    code, _, err = expctl(capsys, "import", "--public-model-id", "preview/preview-bar", "--out-dir", str(tmp_path),
                          "--database-url", db)
    assert code == 0, err
    assert f"adopt: {bar_id}" in (tmp_path / "preview-bar.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["preview-bar.yaml"]

    code, out, err = expctl(capsys, "import", "--public-model-id", "preview/preview-bar", "--public-model-id",
                            "preview/nothing-here", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 1
    assert f"manifest 'preview-bar' already adopts experiment {bar_id}" in out
    assert "preview/nothing-here: no experiment" in err


def test_refuses_to_overwrite_unless_forced(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, BAR)
    target = tmp_path / "preview-bar.yaml"
    target.write_text("# someone else's notes\n")
    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 1
    assert "refusing to overwrite" in err
    assert "--force" in err
    assert target.read_text() == "# someone else's notes\n"

    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db, "--force")
    assert code == 0, err
    assert target.read_text().startswith(SCHEMA_URL_COMMENT)
    assert bindings(db) == {}


def test_names_avoid_existing_manifests_and_bindings(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = (Path(__file__).parents[1] / "experiments.d" / "preview-foo-rc-bakeoff.yaml").read_text()
    hand_written = (existing.replace("preview-foo-rc-bakeoff", "preview-bar")
                    .replace("preview/preview-foo", "preview/other").replace("active", "draft"))
    (tmp_path / "hand-written.yaml").write_text(hand_written)
    insert(db, BAR)
    insert(db, Row("preview/bar-2", "Preview Bar", "draft", [("a", 1, upstream("x"), "k")]))
    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 0, err
    loaded = load_directory(tmp_path)
    assert loaded.problems == ()
    assert sorted(e.name for e in loaded.experiments if e.adopt) == ["preview-bar-2", "preview-bar-3"]


def test_completed_experiment_is_importable_and_needs_no_keys(
    db: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    insert(db, Row("preview/old", "Old run", "completed", [("a", 1, upstream("old"), "gone")], archived=True))
    code, out, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 0, err
    assert "need no variables" in out
    assert "status: completed" in (tmp_path / "old-run.yaml").read_text()
    code, plan = plan_json(capsys, tmp_path, db, redis_url)
    assert plan["summary"]["total"] == plan["summary"]["adopt_experiment"] == 1  # no key is compared


def test_not_importable_rows_are_named_and_skipped(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    insert(db, Row("preview/long", "Long label", "draft", [("x" * 70, 1, upstream("a"), "k")]))
    insert(db, Row("preview/opencode", "Opencode", "draft",
                   [("a", 1, upstream("a", opencode_settings={"ai_sdk_provider": "openai"}), "k")]))
    insert(db, Row("preview/nulls", "Nulls", "draft", [("a", 1, upstream("a", extra_body=None), "k")]))
    insert(db, BAR)
    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 1
    assert "not importable: 'Long label'" in err
    assert "at most 64 characters" in err
    assert "not importable: 'Opencode'" in err
    assert "'opencode_settings', which the gateway of profile 2026-11 does not accept" in err
    assert "metadata.opencode_settings" in err
    assert "not importable: 'Nulls'" in err
    assert "cannot be written exactly as stored" in err
    assert [p.name for p in tmp_path.iterdir()] == ["preview-bar.yaml"]
    assert bindings(db) == {}


def test_nothing_to_import(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = expctl(capsys, "import", "--out-dir", str(tmp_path / "d"), "--database-url", db)
    assert code == 0
    assert "Nothing to import" in out
    assert not (tmp_path / "d").exists()


def test_name_helpers() -> None:
    assert slugify("  Préview FOO: RC/bake-off!! ") == "preview-foo-rc-bake-off"
    assert slugify("***") == "experiment"
    taken = {"a", "a-2"}
    assert unique("a", taken, "-") == "a-3"
    assert "a-3" in taken
    assert env_var_name("preview-foo", "long.context") == "EXPCTL_KEY_PREVIEW_FOO_LONG_CONTEXT"


def test_a_second_import_skips_what_a_manifest_already_adopts(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bar_id = insert(db, BAR)
    assert expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)[0] == 0
    code, out, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 0, err
    assert f"manifest 'preview-bar' already adopts experiment {bar_id}" in out
    assert [p.name for p in tmp_path.iterdir()] == ["preview-bar.yaml"]


def test_adoption_is_refused_when_the_row_was_bound_meanwhile(
    db: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bar_id = insert(db, BAR)
    assert expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)[0] == 0
    with connect(db) as conn, conn.begin():  # another manifest adopted it first
        conn.execute(text("INSERT INTO expctl_binding (name, experiment_id) VALUES ('theirs', :e)"), {"e": bar_id})
    code, plan = plan_json(capsys, tmp_path, db, redis_url)
    assert code == 1
    refused = [c for e in plan["experiments"] for c in e["changes"] if not c["allowed"]]
    adoption = next(c for c in refused if c["kind"] == "adopt_experiment")
    assert "already managed by manifest 'theirs'" in adoption["reason"]
    monkeypatch.setenv("EXPCTL_KEY_PREVIEW_BAR_ONLY", "bar-key")
    monkeypatch.setenv(crypto.BYOK_ENV, BYOK)
    code, _, err = expctl(capsys, "reconcile", "--dir", str(tmp_path), "--database-url", db, "--redis-url",
                          redis_url, "--auto-approve")
    assert code == 1 and "refused" in err
    assert bindings(db) == {"theirs": bar_id}


def test_warns_when_an_existing_manifest_wants_the_same_public_id_routed(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = (Path(__file__).parents[1] / "experiments.d" / "preview-foo-rc-bakeoff.yaml").read_text()
    (tmp_path / "new.yaml").write_text(existing.replace("preview/preview-foo", "preview/preview-bar"))
    insert(db, BAR)
    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 0
    assert "warning:" in err
    assert "preview-bar.yaml" in err


def test_a_2026_05_database_imports_under_its_profile(
    db: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under 2026-05 the upstream keeps its opencode settings, metadata is neither written nor
    compared, and the 2026-11 upstream fields are what is not importable."""
    foo_id = insert(db, FOO_2026_05)
    with connect(db) as conn, conn.begin():  # metadata the 2026-05 gateway never reads
        conn.execute(text("UPDATE model_experiment SET metadata = CAST(:m AS jsonb)"), {"m": json.dumps(META)})
    insert(db, Row("preview/headers", "Headers", "draft", [("a", 1, upstream("a", extra_headers={"X": "1"}), "k")]))
    monkeypatch.setenv("EXPCTL_GATEWAY_PROFILE", "2026-05")
    code, _, err = expctl(capsys, "import", "--out-dir", str(tmp_path), "--database-url", db)
    assert code == 1
    assert "not importable: 'Headers'" in err and "'extra_headers', which the gateway of profile 2026-05" in err
    assert bindings(db) == {}
    text_ = (tmp_path / "preview-foo-rc-bake-off.yaml").read_text()
    assert f"adopt: {foo_id}" in text_
    assert "opencode_settings" in text_ and "metadata" not in text_
    monkeypatch.setenv("EXPCTL_KEY_PREVIEW_FOO_RC_BAKE_OFF_CONTROL", "sk-test-control-0001")
    monkeypatch.setenv(crypto.BYOK_ENV, BYOK)
    (tmp_path / "headers.yaml").unlink(missing_ok=True)
    _, plan = plan_json(capsys, tmp_path, db, redis_url)
    assert plan["gateway_profile"] == "2026-05" and plan["summary"]["total"] == plan["summary"]["adopt_experiment"] == 1
