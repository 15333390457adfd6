"""`expctl simulate` against a real PostgreSQL, checked by an independent re-implementation of the
variant pick (docs/design.md#variant-pick)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from expctl.adapters.store.db import connect
from expctl.cli import run

EXP_ID = "5e1a0000-0000-4000-8000-00000000e001"
# Inserted out of id order on purpose: the pick must walk them in ascending id order.
VARIANTS = [
    ("f0000000-0000-4000-8000-000000000003", "holdout", 1),
    ("b0000000-0000-4000-8000-000000000002", "treatment", 3),
    ("0a000000-0000-4000-8000-000000000001", "control", 1),
]
FAKE_KEY = {"iv": "AAAAAAAAAAAAAAAA", "data": "AA==", "authTag": "AAAAAAAAAAAAAAAAAAAAAA=="}


def reference_pick(experiment_id: str, variants: list[tuple[str, str, int]], subject: str) -> tuple[str, int]:
    """docs/design.md#variant-pick, written independently: (label, bucket)."""
    kind, _, value = subject.partition(":")
    seed = f"model_exp_{experiment_id}_{kind}_{value}".encode()
    total = sum(w for _, _, w in variants)
    point = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") % total
    running = 0
    for _, label, weight in sorted(variants):
        running += weight
        if point < running:
            return label, point
    raise AssertionError("unreachable")


def insert(db_url: str, exp_id: str, public_id: str, status: str, variants: list[tuple[str, str, int]],
           name: str = "Preview Foo", bound_as: str | None = None) -> None:
    with connect(db_url) as conn, conn.begin():
        conn.execute(text("INSERT INTO model_experiment (id, public_model_id, name, status) VALUES (:i, :p, :n, :s)"),
                     {"i": exp_id, "p": public_id, "n": name, "s": status})
        for variant_id, label, weight in variants:
            conn.execute(text("INSERT INTO model_experiment_variant (id, experiment_id, label, weight) "
                              "VALUES (:i, :e, :l, :w)"), {"i": variant_id, "e": exp_id, "l": label, "w": weight})
            conn.execute(text("INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key) "
                              "VALUES (:v, CAST(:u AS jsonb), CAST(:k AS jsonb))"),
                         {"v": variant_id, "u": json.dumps({"internal_id": label, "base_url": "https://x.example/v1"}),
                          "k": json.dumps(FAKE_KEY)})
        if bound_as:
            conn.execute(text("INSERT INTO expctl_binding (name, experiment_id) VALUES (:n, :e)"),
                         {"n": bound_as, "e": exp_id})


def simulate(capsys: pytest.CaptureFixture[str], db_url: str, *args: str) -> tuple[int, str]:
    code = run(["simulate", *args, "--database-url", db_url])
    out, err = capsys.readouterr()
    return code, out + err


def simulate_json(capsys: pytest.CaptureFixture[str], db_url: str, *args: str) -> tuple[int, Any]:
    code, out = simulate(capsys, db_url, *args, "--format", "json")
    return code, json.loads(out)


# Bucket prefixes from `printf %s model_exp_<EXP_ID>_<kind>_<value> | sha256sum`, outside Python.
FIXED = [
    ("user:42", 0xAD60CED3 % 5, "treatment"),
    ("machine:m-7", 0x3E45F6BD % 5, "treatment"),
    ("ip:2001:db8::1", 0x68DD561F % 5, "treatment"),
    ("ip:10.0.0.1", 0xCB89140F % 5, "control"),
    ("user:2", 0x62129A05 % 5, "control"),
    ("user:6", 0x67D5013E % 5, "holdout"),
]


@pytest.mark.parametrize(("subject", "expected_bucket", "expected_label"), FIXED)
def test_fixed_vectors_agree_with_reference(
    db: str, capsys: pytest.CaptureFixture[str], subject: str, expected_bucket: int, expected_label: str,
) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "active", VARIANTS)
    code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", subject)
    assert code == 0
    assert reference_pick(EXP_ID, VARIANTS, subject) == (expected_label, expected_bucket)
    assert (record["variant"]["label"], record["bucket"]) == (expected_label, expected_bucket)
    assert record["variant"]["id"] == next(i for i, label, _ in VARIANTS if label == expected_label)
    assert [v["label"] for v in record["variants"]] == ["control", "treatment", "holdout"]


def test_many_subjects_agree_with_reference(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "active", VARIANTS)
    for i in range(25):
        subject = f"machine:m-{i}"
        _, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", subject)
        assert (record["variant"]["label"], record["bucket"]) == reference_pick(EXP_ID, VARIANTS, subject)


def test_sample_split_is_close_to_the_weights(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "active", VARIANTS)
    code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", "user:1", "--sample", "2000")
    assert code == 0
    rows = {r["label"]: r for r in record["sample"]["rows"]}
    assert sum(r["count"] for r in rows.values()) == 2000
    for label, weight in (("control", 1), ("treatment", 3), ("holdout", 1)):
        assert rows[label]["expected_share"] == pytest.approx(weight / 5)
        assert abs(rows[label]["observed_share"] - weight / 5) < 0.05
        # The observed counts are exactly what the reference gives for the same synthetic subjects.
        expected = sum(1 for i in range(2000) if reference_pick(EXP_ID, VARIANTS, f"user:sample-{i}")[0] == label)
        assert rows[label]["count"] == expected

    code, out = simulate(capsys, db, "preview/preview-foo", "--sample", "200", "--sample-kind", "ip")
    assert code == 0
    assert "200 synthetic ip subjects" in out
    assert "expected" in out
    assert "observed" in out


def test_paused_means_404(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "paused", VARIANTS)
    code, out = simulate(capsys, db, "preview/preview-foo", "--subject", "user:42")
    assert code == 0
    assert "paused" in out
    assert "404" in out


def test_not_routed_exits_1(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "draft", VARIANTS)
    code, out = simulate(capsys, db, "preview/preview-foo", "--subject", "user:42")
    assert code == 1
    assert "not routed" in out
    assert "is draft" in out
    code, record = simulate_json(capsys, db, "preview/unknown", "--subject", "user:42")
    assert code == 1
    assert record["outcome"] == "not_routed"
    assert record["variant"] is None


def test_bad_subject_is_a_usage_error(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = simulate(capsys, db, "preview/preview-foo", "--subject", "email:a@b")
    assert code == 1
    assert "user:ID" in out


MANIFEST = """\
apiVersion: expctl/v1
kind: ModelExperiment
name: {name}
public_model_id: preview/preview-foo
display_name: Preview Foo
status: active
variants:
{variants}"""
VARIANT = """\
  - label: {label}
    weight: {weight}
    upstream: {{internal_id: {label}, base_url: https://x.example/v1}}
    api_key: {{from_env: KEY_{n}}}
"""


def write_manifest(directory: Path, name: str, variants: list[tuple[str, int]]) -> Path:
    directory.mkdir(exist_ok=True)
    body = "".join(VARIANT.format(label=label, weight=w, n=i) for i, (label, w) in enumerate(variants))
    (directory / f"{name}.yaml").write_text(MANIFEST.format(name=name, variants=body))
    return directory


def test_from_manifests_new_experiment_is_a_preview(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = write_manifest(tmp_path / "m", "foo", [("b", 1), ("a", 1)])
    code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", "user:42", "--from-manifests",
                                 "--dir", str(manifests), "--sample", "1000")
    assert code == 0
    assert record["preview"] is True
    assert record["experiment"]["id"] is None
    assert [v["label"] for v in record["variants"]] == ["a", "b"]  # label order as the stand-in
    assert all(v["id"] is None for v in record["variants"])
    assert any("assigned at apply" in note for note in record["notes"])
    assert all(abs(r["observed_share"] - 0.5) < 0.05 for r in record["sample"]["rows"])
    code, out = simulate(capsys, db, "preview/preview-foo", "--subject", "user:42", "--from-manifests",
                         "--dir", str(manifests))
    assert "PREVIEW" in out
    assert "would get" in out


def test_from_manifests_uses_bound_ids(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "active", VARIANTS, bound_as="foo")
    manifests = write_manifest(tmp_path / "m", "foo", [("holdout", 1), ("treatment", 3), ("control", 1)])
    for subject, _, label in FIXED:
        code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", subject, "--from-manifests",
                                     "--dir", str(manifests))
        assert code == 0
        assert record["preview"] is False
        assert record["experiment"]["id"] == EXP_ID
        assert record["variant"]["label"] == label

    write_manifest(tmp_path / "m", "foo", [("holdout", 1), ("treatment", 3), ("control", 1), ("extra", 1)])
    code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", "user:42", "--from-manifests",
                                 "--dir", str(manifests))
    assert record["preview"] is True
    assert [v["label"] for v in record["variants"]] == ["control", "treatment", "holdout", "extra"]
    assert record["variants"][0]["id"] == VARIANTS[2][0]
    assert record["variants"][3]["id"] is None
    assert any("extra" in note and "at apply" in note for note in record["notes"])


def test_from_manifests_not_routed(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, EXP_ID, "preview/preview-foo", "active", VARIANTS)
    manifests = write_manifest(tmp_path / "m", "other", [("a", 1)])
    code, out = simulate(capsys, db, "preview/elsewhere", "--subject", "user:1", "--from-manifests", "--dir",
                         str(manifests))
    assert code == 1
    assert "no manifest wants it" in out
    code, record = simulate_json(capsys, db, "preview/preview-foo", "--subject", "user:1", "--from-manifests",
                                 "--dir", str(manifests))
    assert code == 0
    assert any("takes over only once that one is completed" in note for note in record["notes"])
