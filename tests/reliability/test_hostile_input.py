"""Hostile input end to end (the loader's own property tests live in tests/manifest/).

- `from_file` policy (README): relative paths resolve against the working directory and may not
  contain `..` (E305); absolute paths must lie below an allowed root (E306; here one configured in
  expctl.toml); symlinks are followed within those places. A directory, a non-UTF-8
  file or a missing file is a clear error that never shows content, and nothing is applied.
- The manifest directory: a symlink to a file outside it is refused (E106); a symlinked directory
  is never followed; special files neither hang nor get read.
- SQL-looking, unicode, emoji, bidi and control-character strings in every free-text field are
  stored verbatim, never executed, escaped on the terminal, and round-trip to "no changes".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from expctl.adapters.crypto import decrypt_api_key
from expctl.cli import run
from tests.reliability.helpers import BYOK, child_env, exact_dump, membership, routed_ids, spawn, sql
from tests.workspace import UPSTREAM_A, UPSTREAM_B, Result, Workspace, manifest

pytestmark = pytest.mark.reliability


def file_keyed(path: str, status: str = "active") -> dict[str, Any]:
    m = manifest("exp", status)
    m["variants"][0]["api_key"] = {"from_file": path}
    return m


def validate(ws: Workspace, *args: str) -> Result:
    """`expctl validate` in-process (it takes no connection options)."""
    ws.capsys.readouterr()
    code = run(["validate", *args])
    captured = ws.capsys.readouterr()
    return Result(code, captured.out, captured.err)


def stored_key(ws: Workspace, label: str = "control") -> str:
    row = ws.rows("SELECT DISTINCT ON (v.id) vv.encrypted_api_key FROM model_experiment_variant v "
                  "JOIN model_experiment_variant_version vv ON vv.variant_id = v.id WHERE v.label = :label "
                  "ORDER BY v.id, vv.effective_at DESC, vv.id DESC", label=label)
    return decrypt_api_key(BYOK, row[0]["encrypted_api_key"])


# --- from_file --------------------------------------------------------------------------------------


def test_from_file_relative_absolute_and_symlinked(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "real-key").write_text("key-from-outside\n")
    (ws.root / "secrets").mkdir()
    (ws.root / "secrets" / "relative-key").write_text("key-relative\r\n")
    (ws.root / "secrets" / "link").symlink_to(outside / "real-key")
    (ws.root / "expctl.toml").write_text(f"[secrets]\nfile_roots = ['{outside}']\n")  # absolute: a configured root

    ws.write(file_keyed("secrets/relative-key"))  # against the working directory, one trailing newline cut
    assert ws.reconcile().code == 0
    assert stored_key(ws) == "key-relative"

    ws.write(file_keyed(str(outside / "real-key")))  # absolute, below a configured root: allowed
    assert ws.reconcile().code == 0
    assert stored_key(ws) == "key-from-outside"

    (outside / "real-key").write_text("rotated-behind-the-link\n")
    ws.write(file_keyed("secrets/link"))  # a symlink is followed (mounted secrets rotate that way)
    result = ws.reconcile()
    assert result.code == 0 and "rotated-behind-the-link" not in result.out + result.err
    assert stored_key(ws) == "rotated-behind-the-link"
    assert ws.expctl("plan", "--detailed-exitcode").code == 0


@pytest.mark.parametrize("kind", ["dotdot", "directory", "not-utf8", "missing", "empty"])
def test_from_file_that_cannot_be_used(ws: Workspace, kind: str) -> None:
    canary = "CANARY-file-content-1f2e3d"
    (ws.root / "secrets").mkdir()
    (ws.root / "secrets" / "a-directory").mkdir()
    (ws.root / "secrets" / "latin1").write_bytes(canary.encode() + b"\xff\xfe caf\xe9\n")
    (ws.root / "secrets" / "empty").write_text("\n")
    (ws.root / "secrets" / "fine").write_text(canary)
    path, code, message = {
        "dotdot": ("secrets/../secrets/fine", 1, "E305"),
        "directory": ("secrets/a-directory", 1, "secret file:secrets/a-directory"),
        "not-utf8": ("secrets/latin1", 1, "is not valid UTF-8"),
        "missing": ("secrets/nowhere", 1, "1 secret(s) not available (set the environment variable or provide"),
        "empty": ("secrets/empty", 1, "file:secrets/empty"),
    }[kind]
    ws.write(file_keyed(path))
    before = exact_dump(ws.db_url)
    result = ws.reconcile()
    assert result.code == code, (result.out, result.err)
    assert message in result.out + result.err, (result.out, result.err)
    assert canary not in result.out + result.err
    assert "\ufffd" not in result.out + result.err and "Traceback" not in result.err
    assert exact_dump(ws.db_url) == before  # nothing of the run applied


def test_from_file_naming_a_fifo_does_not_hang(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "secrets").mkdir()
    os.mkfifo(ws.root / "secrets" / "pipe")
    ws.write(file_keyed("secrets/pipe"))
    proc = spawn(ws.root, ["plan", "--database-url", ws.db_url, "--redis-url", ws.redis_url],
                 child_env({"KEY_A": "a", "KEY_B": "b"}), tmp_path / "logs")
    done = proc.wait(timeout=6)  # kills the process group and raises if it hangs
    assert done.code == 1 and "not a regular file" in done.err


# --- the manifest directory ---------------------------------------------------------------------------


def test_manifest_symlinks_leaving_the_directory_are_refused(ws: Workspace,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    sneaky = manifest("sneaky", "active", public_id="preview/sneaky", description="CANARY-outside-manifest")
    (outside / "sneaky.yaml").write_text(json.dumps(sneaky))  # JSON is YAML
    (outside / "dir").mkdir()
    (outside / "dir" / "also.yaml").write_text(json.dumps(manifest("also", "active", public_id="preview/also")))
    ws.write(manifest("exp", "active"))
    (ws.dir / "sneaky.yaml").symlink_to(outside / "sneaky.yaml")
    (ws.dir / "linked-dir").symlink_to(outside / "dir", target_is_directory=True)
    before = exact_dump(ws.db_url)
    for command in (("validate", str(ws.dir)), ("plan",), ("reconcile", "--auto-approve")):
        result = validate(ws, *command[1:]) if command[0] == "validate" else ws.expctl(*command)
        assert result.code == 1, (command, result.out, result.err)
        text = result.out + result.err
        assert "E106" in text and "sneaky.yaml" in text and "linked-dir" in text, text
        assert "CANARY-outside-manifest" not in text
    assert exact_dump(ws.db_url) == before


def test_symlink_inside_the_directory_is_read_once(ws: Workspace) -> None:
    ws.write(manifest("exp", "active"))
    (ws.dir / "sub").mkdir()
    (ws.dir / "sub" / "other.yaml").write_text(json.dumps(manifest("other", "draft", public_id="preview/o")))
    (ws.dir / "alias").symlink_to(ws.dir / "sub", target_is_directory=True)  # not followed: no double read
    result = ws.reconcile()
    assert result.code == 0, (result.out, result.err)
    assert sorted(r["name"] for r in ws.rows("SELECT name FROM expctl_binding")) == ["exp", "other"]


def test_manifest_symlink_loop_is_a_located_problem(ws: Workspace) -> None:
    ws.write(manifest("exp", "draft"))
    (ws.dir / "a.yaml").symlink_to(ws.dir / "b.yaml")
    (ws.dir / "b.yaml").symlink_to(ws.dir / "a.yaml")
    result = validate(ws, str(ws.dir))
    assert result.code == 1 and "internal error" not in result.err, result.err


def test_special_file_in_the_manifest_directory_does_not_hang(ws: Workspace, tmp_path: Path) -> None:
    ws.write(manifest("exp", "draft"))
    os.mkfifo(ws.dir / "pipe.yaml")
    proc = spawn(ws.root, ["validate"], child_env({}), tmp_path / "logs")
    done = proc.wait(timeout=30)
    assert done.code == 1 and "pipe.yaml:1:1" in done.out and "not a regular file" in done.out, done.out


# --- strings that look like SQL, shell, templates, or are just unusual ---------------------------------

HOSTILE = [
    "'; DROP TABLE model_experiment; --",
    "Robert'); DELETE FROM expctl_binding WHERE ('1'='1",
    "$$; SELECT pg_sleep(30); $$",
    "$tag$ dollar quoted $tag$ E'\\x41'",
    ":name :1 ? ?? $1 %s %(name)s {0} {name}",
    "{{ template }} ${HOME} `id` $(id) && rm -rf /",
    "Ünïcødé — 中文 — עברית — العربية — ΑΒΓ",
    "emoji 🧪🚀👩🏽‍💻🏳️‍🌈",
    "bidi \u202eevil\u202c and zero\u200bwidth \ufeffBOM",
    "bell \x07 escape \x1b[31mred\x1b[0m del \x7f tab\tend",
    "line one\nline two\r\nline three",
    "backslash \\ double \" single ' backtick `",
    "   padded with spaces   ",
    "-- just a comment",
    "/* block */ SELECT 1; COMMIT; BEGIN;",
    "\\u0000 is not a NUL, \\0 neither",
    "ID: -1 OR 1=1",
    "<script>alert('x')</script> <!-- html -->",
    "[link](javascript:alert(1)) @everyone #1",
    "ꙮ\U0001f600\U00010000 astral and \uffff non-character",
]


def hostile_manifests() -> list[dict[str, Any]]:
    result = []
    for i, text in enumerate(HOSTILE):
        nxt = HOSTILE[(i + 1) % len(HOSTILE)]
        upstream_a = {**UPSTREAM_A, "internal_id": text[:120],
                      "extra_body": {text: nxt, "nested": {"all": HOSTILE, nxt: {"deep": [text, 1, None, True]}}},
                      "remove_from_body": [text, nxt]}
        variants = [
            {"label": f"a {text}"[:64], "weight": 1, "upstream": upstream_a, "api_key": {"from_env": "KEY_A"}},
            {"label": f"b {nxt}"[:64], "weight": 2, "upstream": dict(UPSTREAM_B), "api_key": {"from_env": "KEY_B"}},
        ]
        public_id = f"preview/h{i} {text}"[:500].lower()  # the gateway lower-cases ids (E210)
        result.append(manifest(f"h{i}", "active" if i % 2 else "draft", public_id=public_id,
                               variants=variants, display_name=text[:200], description=f"{text}\n{nxt}"))
    return result


def test_hostile_strings_are_stored_verbatim_and_round_trip(ws: Workspace, figures: dict[str, object]) -> None:
    manifests = hostile_manifests()
    ws.write(*manifests)
    checked = validate(ws, str(ws.dir))
    assert checked.code == 0, checked.out
    text_plan = ws.expctl("plan")
    assert text_plan.code == 0, (text_plan.out, text_plan.err)
    for raw in ("\x1b", "\x07", "\u202e", "\x7f"):
        assert raw not in text_plan.out, f"{raw!r} reached the terminal unescaped"
    json_plan = ws.expctl("plan", "--format", "json")
    assert json_plan.code == 0
    record = json.loads(json_plan.out)
    assert {e["name"] for e in record["experiments"]} == {m["name"] for m in manifests}
    for fmt in ("markdown", "github"):
        assert ws.expctl("plan", "--format", fmt).code == 0

    applied = ws.reconcile()
    assert applied.code == 0, (applied.out, applied.err)
    for m in manifests:
        row = ws.experiment(m["name"])
        assert (row["name"], row["description"], row["public_model_id"]) == (
            m["display_name"], m["description"], m["public_model_id"])
        variants = ws.rows("SELECT DISTINCT ON (v.id) v.label, v.weight, vv.upstream FROM model_experiment_variant v "
                           "JOIN model_experiment_variant_version vv ON vv.variant_id = v.id "
                           "WHERE v.experiment_id = :id ORDER BY v.id, vv.effective_at DESC, vv.id DESC", id=row["id"])
        assert sorted((v["label"], v["weight"], v["upstream"]) for v in variants) == sorted(
            (v["label"], v["weight"], v["upstream"]) for v in m["variants"])
    # Every table is still there and holds exactly what was asked for.
    assert sql(ws.db_url, "SELECT count(*) AS n FROM model_experiment") == [{"n": len(manifests)}]
    assert membership(ws.redis_url) == routed_ids(ws.db_url)
    assert len(routed_ids(ws.db_url)) == len(HOSTILE) // 2

    again = ws.reconcile()
    assert again.code == 0 and "Nothing to apply" in again.out
    assert ws.expctl("plan", "--detailed-exitcode").code == 0
    assert ws.expctl("cache", "check").code == 0
    history = ws.expctl("history", "--format", "json")
    assert history.code == 0 and json.loads(history.out)
    figures.update(strings=len(HOSTILE), manifests=len(manifests),
                   fields_per_string=["display_name", "description", "public_model_id", "label", "internal_id",
                                      "extra_body key", "extra_body value", "remove_from_body"])


@pytest.mark.parametrize("field", ["display_name", "description", "label", "extra_body"])
def test_nul_characters_are_refused_before_any_write(ws: Workspace, field: str) -> None:
    m = manifest("exp", "draft")
    if field == "label":
        m["variants"][0]["label"] = "nul\x00label"
    elif field == "extra_body":
        m["variants"][0]["upstream"]["extra_body"] = {"k": "nul\x00value"}
    else:
        m[field] = "nul\x00text"
    ws.write(m)
    result = ws.reconcile()
    assert result.code == 1, (result.out, result.err)
    assert "E110" in result.err and "exp.yaml:" in result.err, result.err  # located, before any write
    assert "internal error" not in result.err and "Traceback" not in result.err
    assert ws.rows("SELECT id FROM model_experiment") == []
    assert ws.reconcile().code == 1  # the same answer again, and still nothing written
    assert ws.rows("SELECT id FROM model_experiment") == []


def test_nul_characters_are_a_located_validation_problem(ws: Workspace) -> None:
    m = manifest("exp", "draft", description="nul\x00text")
    ws.write(m)
    result = validate(ws, str(ws.dir))
    assert result.code == 1 and "exp.yaml:" in result.out, result.out
