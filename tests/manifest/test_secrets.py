"""Secret rules (E301 to E306) and the guarantee that no problem output ever repeats a secret."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from expctl.adapters.manifest.load import load_directory
from expctl.adapters.secret_policy import SecretPolicy
from expctl.core.errors import Problem
from expctl.core.manifest.secretscan import find_key_like
from expctl.core.render.problems import PROBLEM_RENDERERS

from .helpers import BASE, Found, assert_clean, edit, load_files, load_one, manifest, only_problem, unmark, write
from .keys import FAKE_KEYS, fake_key, kind_of

KEY_REF = "{from_env: PARTNER_RC1_KEY}"
UPSTREAM_1 = "      base_url: https://partner.example.com/v1\n    api_key: {from_env: PARTNER_RC1_KEY}"


def in_upstream(line: str) -> str:
    return edit(BASE, UPSTREAM_1, UPSTREAM_1.replace("\n    api_key", f"\n      {line}\n    api_key"))


@pytest.mark.parametrize(
    "literal",
    ["«sk-ant-api03-abcdefABCDEF0123456789", "«plain-text-key", "«12345", "«[a, b]", "«null", "«''", "«true"],
    ids=["key-like", "plain", "int", "list", "null", "empty", "bool"],
)
def test_literal_api_key_is_e301(tmp_path: Path, literal: str) -> None:
    source, where = unmark(edit(BASE, KEY_REF, literal))
    result = load_one(tmp_path, source)
    assert only_problem(result) == Found("E301", "m.yaml", *where)  # no extra E303 for the same value
    assert "rotate it" in result.problems[0].hint


@pytest.mark.parametrize(
    "reference",
    ["«{from_env: A, from_file: /b}", "«{}", "«{from_vault: x}", "«{from_env: A, note: x}"],
    ids=["both", "neither", "unknown-resolver", "extra-member"],
)
def test_api_key_reference_shape_is_e302(tmp_path: Path, reference: str) -> None:
    source, where = unmark(edit(BASE, KEY_REF, reference))
    assert only_problem(load_one(tmp_path, source)) == Found("E302", "m.yaml", *where)


@pytest.mark.parametrize("reference", ["{from_env: PARTNER_KEY}", "{from_file: /run/secrets/partner}",
                                       "{from_file: examples/secrets/sk-file}", "\n      from_env: X"])
def test_secret_references_pass(tmp_path: Path, reference: str) -> None:
    assert_clean(load_one(tmp_path, edit(BASE, KEY_REF, reference)))


# Where a pasted key can hide: (id, template with « before {key}).
PLACES: list[tuple[str, str]] = [
    ("description", edit(BASE, "description: Compare two checkpoints", "description: «'uses {key} for now'")),
    ("display_name", edit(BASE, "display_name: Preview A", "display_name: «{key}")),
    ("internal_id", edit(BASE, "internal_id: partner-checkpoint-rc1", "internal_id: «{key}")),
    ("base_url query", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                            "base_url: «'https://partner.example.com/v1?key={key}'\n    api_key: {from_env")),
    ("extra_body value", in_upstream("extra_body: {auth: «{key}}")),
    ("extra_body key", in_upstream("extra_body: {«{key}: true}")),
    ("extra_body nested list", in_upstream("extra_body: {a: [[x, [«{key}]], 1]}")),
    ("extra_body block list", in_upstream("extra_body:\n        headers:\n          - x\n          - «{key}")),
    ("remove_from_body", in_upstream("remove_from_body: [top_k, «{key}]")),
    ("public_model_id", edit(BASE, "public_model_id: preview/preview-a", "public_model_id: «preview/{key}")),
]


@pytest.mark.parametrize("prefix", sorted(FAKE_KEYS))
@pytest.mark.parametrize(("template"), [t for _, t in PLACES], ids=[i for i, _ in PLACES])
def test_key_like_string_is_e303(tmp_path: Path, template: str, prefix: str) -> None:
    key = fake_key(prefix, random.Random(prefix))
    source, where = unmark(template.replace("{key}", key))
    result = load_one(tmp_path, source)
    e303 = [p for p in result.problems if p.code == "E303"]
    assert [(p.location.line, p.location.col) for p in e303] == [where]
    assert e303[0].message == f"this value looks like a live credential ({kind_of(prefix)})"
    assert result.experiments == ()
    # Only a too-long value may add its own length problem.
    assert {p.code for p in result.problems} <= {"E303", "E206"}


def test_key_in_from_env_is_e303_and_e207(tmp_path: Path) -> None:
    key = fake_key("sk-ant-", random.Random(0))
    source, where = unmark(edit(BASE, KEY_REF, "{from_env: «" + key + "}"))
    result = load_one(tmp_path, source)
    assert sorted((p.code, p.location.line, p.location.col) for p in result.problems) == [
        ("E207", *where), ("E303", *where)]


REALISTIC = [
    "claude-3-5-sonnet-20241022", "gpt-4o-mini-2024-07-18", "partner-checkpoint-rc1",
    "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo", "accounts/fireworks/models/llama-v3p1-405b-instruct",
    "0f8fad5b-d9cb-469f-a165-70867728950e", "3f786850e387550fdab836ed7e6dc881de23001b",
    # (a sha256 digest, 64 hex, is flagged on purpose: see test_secretscan_hex.py)
    "https://my-resource.openai.azure.com/openai/deployments/GPT4o-Prod/chat/completions?api-version=2024-08-01-preview",
    "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
    "aGVsbG8gd29ybGQ=", "dGVzdA==", "Zm9vYmFy",
    "task-router-experiment-2024-canary-eu-west", "risk-scoring-long-context-evaluation-run",
    "a-very-long-lowercase-slug-for-the-desk-support-assistant-experiment-2025",
    "ASIAPACIFICREGIONALROUTING", "2024-10-22T13:45:00Z", "preview/preview-foo", "/run/secrets/partner-rc2",
]


@pytest.mark.parametrize("value", REALISTIC)
def test_realistic_values_are_not_flagged(tmp_path: Path, value: str) -> None:
    assert find_key_like(value) is None
    text = in_upstream(f"extra_body: {{'{value}': ['{value}']}}").replace(
        "description: Compare two checkpoints", f"description: '{value}'")
    assert_clean(load_one(tmp_path, text))


# ---------------------------------------------------------------------------------------------------
# No output ever repeats a secret.

def canary(rng: random.Random, lowercase: bool = False) -> str:
    body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))
    return "sk-ant-api03-canary" + (body if lowercase else body.upper() + "xY9")


def canary_files(rng: random.Random) -> dict[str, str | bytes]:
    """Manifests that put a canary key into every place a message could quote."""
    def c() -> str:  # a fresh canary per place
        return canary(rng)

    def low() -> str:  # one that fits [a-z0-9-] (names, ids)
        return canary(rng, lowercase=True)

    shared_name, shared_id, shared_label = low(), low(), low()
    pairs = [
        ("literal", KEY_REF, c()),
        ("from_env", KEY_REF, "{from_env: " + c() + "}"),
        ("from_file", KEY_REF, "{from_file: " + c() + "}"),
        ("both", KEY_REF, "{from_env: " + c() + ", from_file: " + c() + "}"),
        ("description", "description: Compare two checkpoints", "description: " + c()),
        ("display_name", "display_name: Preview A", "display_name: " + c()),
        ("status", "status: draft", "status: " + c()),
        ("name-pattern", "name: exp-a", "name: " + c()),
        ("url-userinfo", "https://partner.example.com/v1\n    api_key: {from_env",
         f"https://user:{c()}@partner.example.com/v1\n    api_key: {{from_env"),
        ("url-query", "https://partner.example.com/v1\n    api_key: {from_env",
         f"'https://partner.example.com/v1?key={c()}'\n    api_key: {{from_env"),
        ("url-bad", "https://partner.example.com/v1\n    api_key: {from_env",
         f"ftp://{low()}.example.com\n    api_key: {{from_env"),
        ("weight", "    weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1",
         "    weight: " + c() + "\n    upstream:\n      internal_id: partner-checkpoint-rc1"),
        ("label-long", "label: control", "label: " + c() * 3),
        ("internal_id", "internal_id: partner-checkpoint-rc1", "internal_id: " + c()),
        ("provider", "{ai_sdk_provider: openai-compatible}", "{ai_sdk_provider: " + c() + "}"),
        ("unknown-key", "status: draft", f"status: draft\n{c()}: 1"),
        ("duplicate-key", "status: draft", f"status: draft\n{(k := c())}: 1\n{k}: 2"),
        ("upstream-unknown", "      internal_id: partner-checkpoint-rc1",
         f"      internal_id: partner-checkpoint-rc1\n      {c()}: x"),
        ("extra_body-date", "      internal_id: partner-checkpoint-rc1",
         f"      internal_id: partner-checkpoint-rc1\n      extra_body: {{{c()}: 2024-01-01}}"),
        ("extra_body-nan", "      internal_id: partner-checkpoint-rc1",
         f"      internal_id: partner-checkpoint-rc1\n      extra_body: {{{c()}: [.nan]}}"),
        ("tag", "display_name: Preview A", f"display_name: !{c()} x"),
        ("syntax", "display_name: Preview A", f"display_name: {c()}: {c()}"),
        ("syntax-quote", "display_name: Preview A", f"display_name: '{c()}"),
        ("non-utf8", "display_name: Preview A", f"display_name: {c()}\udcff"),
    ]
    files: dict[str, str | bytes] = {}
    for label, old, new in pairs:
        text = edit(BASE, old, new)
        files[f"{label}.yaml"] = (
            text.encode("utf-8", "surrogateescape") if "\udcff" in text else text
        )
    # Cross-file rules quote names, labels, ids: give them canaries that pass the name pattern.
    files["cross-a.yaml"] = manifest(name=shared_name, public_model_id=shared_id, status="active",
                                     archived="true", variants=((shared_label, None), (shared_label, low())))
    files["cross-b.yaml"] = manifest(name=shared_name, public_model_id=shared_id, status="paused",
                                     variants=((shared_label, shared_label), ("x", low()), ("y", None)))
    files["cross-c.yaml"] = manifest(name="renames", variants=(("a", (old := low())), ("b", old)))
    return files


def rendered_outputs(problems: tuple[Problem, ...], files: int) -> dict[str, str]:
    return {fmt: render(problems, files, 0) for fmt, render in PROBLEM_RENDERERS.items()}


def test_no_output_format_repeats_a_secret(tmp_path: Path) -> None:
    files = canary_files(random.Random(7))
    result = load_files(tmp_path, files)
    codes = {p.code for p in result.problems}
    # The canaries did reach every kind of rule.
    assert codes >= {"E101", "E102", "E104", "E108", "E201", "E203", "E204", "E206", "E207", "E209", "E301",
                     "E302", "E303", "E401", "E402", "E403", "E404", "E405"}
    problem_files = {Path(p.location.path).name for p in result.problems}
    assert problem_files == set(files)
    for fmt, output in rendered_outputs(result.problems, len(files)).items():
        assert "canary" not in output.lower(), f"{fmt} output repeats a secret"
        assert "sk-ant-api03-" not in output, fmt


def test_messages_name_the_kind_not_the_value(tmp_path: Path) -> None:
    key = fake_key("sk-ant-", random.Random(3))
    result = load_one(tmp_path, BASE + f"{key}: 1\n{key}: 2\n")
    messages = sorted(p.message for p in result.problems)
    assert messages == sorted([
        f"duplicate key (a key-like name) (first at line {BASE.count(chr(10)) + 1})",
        "unknown field (a key-like name) in document",
        "this value looks like a live credential (Anthropic key)",
    ])


@pytest.mark.parametrize("name", [
    "BYOK_ENCRYPTION_KEY", "DATABASE_URL", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN",
    # Missed before issue 13: CI and cloud credentials, expctl's other settings, other spellings.
    "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "VAULT_TOKEN", "KUBECONFIG", "CI_JOB_JWT_V2",
    "CI_JOB_TOKEN", "CIRCLE_TOKEN", "BUILDKITE_AGENT_ACCESS_TOKEN", "PGPASSFILE", "PGSSLKEY", "REDISCLI_AUTH",
    "EXPCTL_PLAN_DATABASE_URL", "EXPCTL_CONFIG", "TEST_DATABASE_URL", "gh_token", "Aws_Session_Token",
])
def test_from_env_may_not_name_expctls_own_credentials_e304(tmp_path: Path, name: str) -> None:
    source, where = unmark(edit(BASE, KEY_REF, "«{from_env: " + name + "}"))
    found = only_problem(load_one(tmp_path, source))
    assert found == Found("E304", "m.yaml", *where)


@pytest.mark.parametrize("name", ["PARTNER_RC1_KEY", "EXPCTL_KEY_PREVIEW_FOO_CONTROL", "GITHUB_TOKEN_FOR_PARTNER_X",
                                  "MY_AWS_PARTNER_KEY"])
def test_from_env_ordinary_names_pass(tmp_path: Path, name: str) -> None:
    """`EXPCTL_KEY_*` is what `expctl import` writes; the reserved list matches whole names."""
    assert_clean(load_one(tmp_path, edit(BASE, KEY_REF, "{from_env: " + name + "}")))


@pytest.mark.parametrize("reference", ["«{from_file: ../outside/key}", "«{from_file: secrets/../../etc/passwd}"])
def test_from_file_may_not_climb_out_e305(tmp_path: Path, reference: str) -> None:
    source, where = unmark(edit(BASE, KEY_REF, reference))
    assert only_problem(load_one(tmp_path, source)) == Found("E305", "m.yaml", *where)


@pytest.mark.parametrize("path", [
    "/proc/self/environ", "/proc/self/cmdline", "/proc/1/environ", "/dev/stdin", "/dev/fd/0",
    "/sys/kernel/mm/transparent_hugepage/enabled", ".expctl/byok.key", "./.expctl/byok.key", ".EXPCTL/byok.key",
    "/etc/passwd", "/run/secrets", "/var/run/secrets/kubernetes.io/serviceaccount/token", "//proc/self/environ",
    "/home/someone/.pgpass",
])
def test_from_file_outside_the_allowed_places_is_e306(tmp_path: Path, path: str) -> None:
    source, where = unmark(edit(BASE, KEY_REF, "«{from_file: '" + path + "'}"))
    result = load_one(tmp_path / "d", source)
    assert only_problem(result) == Found("E306", "m.yaml", *where)
    assert result.problems[0].hint


def test_e306_says_which_place_and_what_to_do(tmp_path: Path) -> None:
    environ = load_one(tmp_path / "a", edit(BASE, KEY_REF, "{from_file: /proc/self/environ}")).problems[0]
    assert "/proc" in environ.message and "never" in environ.message
    passwd = load_one(tmp_path / "b", edit(BASE, KEY_REF, "{from_file: /etc/passwd}")).problems[0]
    assert "/run/secrets, /var/run/secrets" in passwd.message and "file_roots" in passwd.hint
    state = load_one(tmp_path / "c", edit(BASE, KEY_REF, "{from_file: .expctl/byok.key}")).problems[0]
    assert ".expctl/" in state.message


@pytest.mark.parametrize("path", ["secrets/partner", "examples/secrets/x", "/run/secrets/partner",
                                  "/var/run/secrets/partner/key", "/run/secrets/..data/key", "secrets/.expctl"])
def test_from_file_inside_the_allowed_places_passes(tmp_path: Path, path: str) -> None:
    assert_clean(load_one(tmp_path, edit(BASE, KEY_REF, "{from_file: '" + path + "'}")))


def test_configured_roots_are_allowed_but_never_the_forbidden_places(tmp_path: Path) -> None:
    text = edit(BASE, KEY_REF, "{from_file: /etc/expctl/secrets/partner}")
    directory = write(tmp_path / "d", {"m.yaml": text})
    assert [p.code for p in load_directory(directory).problems] == ["E306"]
    policy = SecretPolicy.build(tmp_path, {}, extra_roots=[Path("/etc/expctl/secrets")])
    assert load_directory(directory, policy=policy).problems == ()
    # A credential file named by the environment is refused even below an allowed root.
    policy = SecretPolicy.build(tmp_path, {"PGPASSFILE": "/etc/expctl/secrets/partner"},
                                extra_roots=[Path("/etc/expctl/secrets")])
    assert [p.code for p in load_directory(directory, policy=policy).problems] == ["E306"]
