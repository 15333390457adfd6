"""What each gateway profile accepts: the 2026-11 upstream and metadata, reserved public ids, and
credentials the upstream blob must never carry, all located at `line:col` (`«` marks the place)."""

from __future__ import annotations

from pathlib import Path

import pytest

from expctl.adapters.manifest.load import load_directory
from expctl.adapters.manifest.pydantic_problems import _UPSTREAM_FORBIDDEN_HINTS
from expctl.core.manifest.model import Metadata, manifest_model
from expctl.core.profiles import gateway_profile

from .helpers import BASE, BASE_2026_05, Found, assert_clean, edit, load_one, only_problem, unmark, write

UPSTREAM_1 = "      base_url: https://partner.example.com/v1\n    api_key: {from_env: PARTNER_RC1_KEY}"
METADATA = "metadata:\n  context_length: 200000\n  max_completion_tokens: 32000\n"
OPENCODE = "  opencode_settings: {ai_sdk_provider: openai-compatible}\n"


def in_upstream(line: str, base: str = BASE) -> str:
    """`base` with `line` added to the first variant's upstream."""
    return edit(base, UPSTREAM_1, UPSTREAM_1.replace("\n    api_key", f"\n      {line}\n    api_key"))


def with_metadata(body: str) -> str:
    """BASE with its metadata replaced by `metadata:` followed by `body` (indented lines)."""
    return BASE.split("metadata:\n")[0] + "metadata:" + body


def with_opencode(settings: str) -> str:
    return edit(BASE, OPENCODE, f"  opencode_settings: {settings}\n")


def public_id(value: str) -> str:
    return edit(BASE, "public_model_id: preview/preview-a", f"public_model_id: {value}")


def assert_located(directory: Path, text: str, code: str, profile: str | None = None) -> None:
    """`text`, loaded under `profile`, has one problem: `code`, where the « stands."""
    source, where = unmark(text)
    assert only_problem(load_one(directory, source, profile=profile)) == Found(code, "m.yaml", *where)


# --- the 2026-11 upstream -----------------------------------------------------------------------------

FAILING_UPSTREAM: list[tuple[str, str, str]] = [
    ("opencode_settings moved", in_upstream("«opencode_settings: {ai_sdk_provider: openai}"), "E201"),
    ("openclaw_settings gone", in_upstream("«openclaw_settings: {api_adapter: openai-completions}"), "E201"),
    ("extra_headers value not a string", in_upstream("extra_headers: {X-Retries: «3}"), "E204"),
    ("extra_headers as list", in_upstream("extra_headers: «[a, b]"), "E204"),
    ("remove_cache_breakpoints quoted", in_upstream("remove_cache_breakpoints: «'true'"), "E204"),
    ("inject_reasoning_into_content int", in_upstream("inject_reasoning_into_content: «1"), "E204"),
    ("compression disabled", edit(BASE, "{enabled: true, model_alias", "{enabled: «false, model_alias"), "E203"),
    ("compression enabled quoted", edit(BASE, "{enabled: true, model_alias", "{enabled: «'true', model_alias"),
     "E203"),  # `enabled` only has one allowed value
    ("compression without model_alias", edit(BASE, "compression: {enabled: true, model_alias: small-summarizer}",
                                             "compression: «{enabled: true}"), "E202"),
    ("compression without enabled", edit(BASE, "compression: {enabled: true, model_alias: small-summarizer}",
                                         "compression: «{model_alias: small-summarizer}"), "E202"),
    ("compression unknown field", edit(BASE, "model_alias: small-summarizer}", "model_alias: small-summarizer, "
                                       "«level: 3}"), "E201"),
    ("compression base_url", edit(BASE, "model_alias: small-summarizer}", "model_alias: small-summarizer, "
                                  "base_url: «ftp://c.example.com}"), "E209"),
    ("compression model_alias empty", edit(BASE, "model_alias: small-summarizer}", "model_alias: «''}"), "E206"),
    # Credentials never go into the upstream blob: the gateway stores it in plain text.
    ("authorization header", in_upstream("extra_headers: {«Authorization: x}"), "E307"),
    ("proxy-authorization header", in_upstream("extra_headers: {a: b, «PROXY-AUTHORIZATION: x}"), "E307"),
    ("x-api-key header", in_upstream("extra_headers: {«X-Api-Key: x}"), "E307"),
    ("api-key header", in_upstream("extra_headers: {«api-key: x}"), "E307"),
    ("cookie header", in_upstream("extra_headers: {«Cookie: x}"), "E307"),
    ("key-like header value", in_upstream("extra_headers: {X-Partner: «sk-ant-api03-" + "a1B2" * 20 + "}"), "E303"),
    ("compression api_key", edit(BASE, "model_alias: small-summarizer}", "model_alias: small-summarizer, "
                                 "«api_key: x}"), "E308"),
]


@pytest.mark.parametrize(("text", "code"), [(t, c) for _, t, c in FAILING_UPSTREAM],
                         ids=[i for i, _, _ in FAILING_UPSTREAM])
def test_upstream_2026_11_rule_is_located(tmp_path: Path, text: str, code: str) -> None:
    assert_located(tmp_path, text, code)


def test_every_2026_11_upstream_field_is_kept_as_written(tmp_path: Path) -> None:
    text = in_upstream(
        "add_cache_breakpoints: true\n      remove_cache_breakpoints: false\n"
        "      inject_reasoning_into_content: true\n      extra_headers: {X-Team: core, x-region: eu}\n"
        "      extra_body: {reasoning: {effort: high}}\n      remove_from_body: [top_k]\n"
        "      compression: {enabled: true, base_url: 'https://c.example.com/v1', model_alias: small}")
    experiment = load_one(tmp_path, text).experiments[0]
    assert dict(experiment.variants[0].upstream) == {
        "internal_id": "partner-checkpoint-rc1", "base_url": "https://partner.example.com/v1",
        "add_cache_breakpoints": True, "remove_cache_breakpoints": False, "inject_reasoning_into_content": True,
        "extra_headers": {"X-Team": "core", "x-region": "eu"}, "extra_body": {"reasoning": {"effort": "high"}},
        "remove_from_body": ["top_k"],
        "compression": {"enabled": True, "base_url": "https://c.example.com/v1", "model_alias": "small"},
    }


def test_the_opencode_move_hint_names_metadata(tmp_path: Path) -> None:
    (problem,) = load_one(tmp_path, in_upstream("opencode_settings: {ai_sdk_provider: openai}")).problems
    assert problem.message == "unknown field 'opencode_settings' in variants.0.upstream"
    assert problem.hint == _UPSTREAM_FORBIDDEN_HINTS["opencode_settings"]
    assert "metadata.opencode_settings" in problem.hint


def test_a_2026_05_manifest_under_2026_11_gets_the_move_hint_per_variant(tmp_path: Path) -> None:
    problems = load_one(tmp_path, BASE_2026_05).problems
    assert sorted((p.code, p.location.line, p.hint) for p in problems) == [
        ("E201", 22, _UPSTREAM_FORBIDDEN_HINTS["opencode_settings"]),
        ("E201", 23, _UPSTREAM_FORBIDDEN_HINTS["openclaw_settings"]),
    ]


def test_credential_messages_and_hints_never_echo_values(tmp_path: Path) -> None:
    secret_name = "Authorization"
    text = in_upstream(f"extra_headers: {{{secret_name}: Bearer-not-shown-1}}")
    (problem,) = load_one(tmp_path, text).problems
    assert "Bearer-not-shown-1" not in problem.message + problem.hint
    assert "api_key" in problem.hint
    text = edit(BASE, "model_alias: small-summarizer}", "model_alias: small-summarizer, api_key: hidden-42}")
    (problem,) = load_one(tmp_path / "b", text).problems
    assert problem.code == "E308" and "hidden-42" not in problem.message + problem.hint


def test_credential_headers_are_2026_11_rules_only(tmp_path: Path) -> None:
    """Under 2026-05 extra_headers and compression are unknown fields: one E201 each, nothing more."""
    text = in_upstream("extra_headers: {Authorization: x}\n      compression: {enabled: true, model_alias: m, "
                       "api_key: k}", base=BASE_2026_05)
    assert sorted(p.code for p in load_one(tmp_path, text, profile="2026-05").problems) == ["E201", "E201"]


# --- metadata ---------------------------------------------------------------------------------------------

def test_metadata_is_desired_state_as_plain_json(tmp_path: Path) -> None:
    text = with_metadata(
        "\n  context_length: 1000000\n  max_completion_tokens: 64000.5\n  supports_image_input: true\n"
        "  opencode_settings:\n    ai_sdk_provider: anthropic\n    family: claude\n    prompt: anthropic_without_todo\n"
        "    variants:\n      fast: {verbosity: low, reasoning: {enabled: false}}\n"
        "      deep: {reasoning: {enabled: true, effort: xhigh}}\n      plain: {}\n")
    (experiment,) = load_one(tmp_path, text).experiments
    assert experiment.metadata == {
        "context_length": 1000000, "max_completion_tokens": 64000.5, "supports_image_input": True,
        "opencode_settings": {"ai_sdk_provider": "anthropic", "family": "claude", "prompt": "anthropic_without_todo",
                              "variants": {"fast": {"verbosity": "low", "reasoning": {"enabled": False}},
                                           "deep": {"reasoning": {"enabled": True, "effort": "xhigh"}},
                                           "plain": {}}},
    }
    assert isinstance(experiment.metadata["context_length"], int)  # 1000000, not 1000000.0
    # Where its value starts: the line after `metadata:`.
    assert experiment.field_locations["metadata"].line == BASE.split("metadata:")[0].count("\n") + 2


def test_absent_or_null_metadata_is_none(tmp_path: Path) -> None:
    (experiment,) = load_one(tmp_path, BASE.split("metadata:\n")[0]).experiments
    assert experiment.metadata is None
    (experiment,) = load_one(tmp_path / "b", with_metadata(" null\n")).experiments
    assert experiment.metadata is None


@pytest.mark.parametrize("values", [
    {"family": ["claude", "gpt", "gemini", "llama", "mistral"]},
    {"prompt": ["codex", "gemini", "beast", "anthropic", "trinity", "anthropic_without_todo", "ling", "gpt55"]},
    {"ai_sdk_provider": ["anthropic", "openai", "openai-compatible", "openrouter", "alibaba", "mistral"]},
], ids=["family", "prompt", "provider"])
def test_every_allowed_opencode_value_passes(tmp_path: Path, values: dict[str, list[str]]) -> None:
    ((field, allowed),) = values.items()
    for value in allowed:
        assert_clean(load_one(tmp_path / value, with_opencode(f"{{{field}: {value}}}")))


@pytest.mark.parametrize("verbosity", ["low", "medium", "high", "xhigh", "max"])
@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_every_variant_setting_passes(verbosity: str, effort: str) -> None:
    data = {"context_length": 1, "max_completion_tokens": 1, "opencode_settings": {"variants": {
        "v": {"verbosity": verbosity, "reasoning": {"enabled": True, "effort": effort}}}}}
    Metadata.model_validate(data, strict=True)


FAILING_METADATA: list[tuple[str, str, str]] = [
    ("not a mapping", with_metadata(" «[1, 2]\n"), "E204"),
    ("context_length missing", with_metadata("\n  «max_completion_tokens: 32000\n"), "E202"),
    ("max_completion_tokens missing", with_metadata("\n  «context_length: 200000\n"), "E202"),
    ("context_length quoted", with_metadata("\n  context_length: «'200000'\n  max_completion_tokens: 1\n"), "E204"),
    ("context_length bool", with_metadata("\n  context_length: «true\n  max_completion_tokens: 1\n"), "E204"),
    ("context_length nan", with_metadata("\n  context_length: «.nan\n  max_completion_tokens: 1\n"), "E204"),
    ("max_completion_tokens inf", with_metadata("\n  context_length: 1\n  max_completion_tokens: «.inf\n"), "E204"),
    ("unsafe integer", with_metadata("\n  context_length: «9007199254740993\n  max_completion_tokens: 1\n"),
     "E211"),
    ("supports_image_input string", edit(BASE, "  max_completion_tokens: 32000\n",
                                         "  max_completion_tokens: 32000\n  supports_image_input: «'yes'\n"),
     "E204"),
    ("unknown field", edit(BASE, "  max_completion_tokens: 32000\n",
                           "  max_completion_tokens: 32000\n  «temperature: 1\n"), "E201"),
    ("unknown opencode field", with_opencode("{family: gpt, «model: x}"), "E201"),
    ("family", with_opencode("{family: «mixtral}"), "E203"),
    ("prompt", with_opencode("{prompt: «default}"), "E203"),
    ("provider", with_opencode("{ai_sdk_provider: «azure}"), "E203"),
    ("variants as list", with_opencode("{variants: «[fast]}"), "E204"),
    ("variant as string", with_opencode("{variants: {fast: «quick}}"), "E204"),
    ("verbosity", with_opencode("{variants: {fast: {verbosity: «loud}}}"), "E203"),
    ("unknown variant field", with_opencode("{variants: {fast: {«temperature: 1}}}"), "E201"),
    ("reasoning unknown field", with_opencode("{variants: {fast: {reasoning: {«budget: 1}}}}"), "E201"),
    ("reasoning enabled quoted", with_opencode("{variants: {fast: {reasoning: {enabled: «'yes'}}}}"), "E204"),
    ("effort", with_opencode("{variants: {fast: {reasoning: {effort: «extreme}}}}"), "E203"),
]


@pytest.mark.parametrize(("text", "code"), [(t, c) for _, t, c in FAILING_METADATA],
                         ids=[i for i, _, _ in FAILING_METADATA])
def test_metadata_rule_is_located(tmp_path: Path, text: str, code: str) -> None:
    assert_located(tmp_path, text, code)


def test_metadata_under_2026_05_is_one_located_problem(tmp_path: Path) -> None:
    text, where = unmark(BASE_2026_05 + "«" + METADATA)
    result = load_one(tmp_path, text, profile="2026-05")
    assert only_problem(result) == Found("E213", "m.yaml", *where)
    assert "2026-11" in result.problems[0].hint
    # Even an invalid metadata is only this one problem: that gateway reads no metadata at all.
    result = load_one(tmp_path / "b", BASE_2026_05 + "metadata: {colour: red, context_length: 9007199254740993}\n",
                      profile="2026-05")
    assert [p.code for p in result.problems] == ["E213"]


# --- reserved public ids (2026-11) -------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["kilo/preview-a", "kilocode/x", "kilo-internal/x", "kilo/"])
def test_reserved_prefix_is_located(tmp_path: Path, value: str) -> None:
    assert_located(tmp_path, public_id("«" + value), "E212")


def test_reserved_prefixes_compare_case_insensitively(tmp_path: Path) -> None:
    problems = load_one(tmp_path, public_id("KiloCode/x")).problems
    assert sorted(p.code for p in problems) == ["E210", "E212"]  # unreachable and reserved
    assert {(p.location.line, p.location.col) for p in problems} == {(5, 18)}


def test_reserved_prefix_message_and_hint(tmp_path: Path) -> None:
    (problem,) = load_one(tmp_path, public_id("kilo/preview-a")).problems
    assert "'kilo/'" in problem.message and "2026-11" in problem.message
    assert "preview/" in problem.hint


@pytest.mark.parametrize("value", ["kilo-preview/x", "preview/kilo/x", "kilocoder", "kilo"])
def test_near_misses_are_not_reserved(tmp_path: Path, value: str) -> None:
    assert_clean(load_one(tmp_path, public_id(value)))


def test_2026_05_reserves_no_prefix(tmp_path: Path) -> None:
    text = edit(BASE_2026_05, "public_model_id: preview/preview-a", "public_model_id: kilo/preview-a")
    assert_clean(load_one(tmp_path, text, profile="2026-05"))


# --- one manifest, two profiles ---------------------------------------------------------------------------

def test_each_base_is_clean_under_its_profile_only(tmp_path: Path) -> None:
    assert_clean(load_one(tmp_path / "a", BASE))
    assert_clean(load_one(tmp_path / "b", BASE_2026_05, profile="2026-05"))
    assert {p.code for p in load_one(tmp_path / "c", BASE, profile="2026-05").problems} == {"E201", "E213"}
    assert {p.code for p in load_one(tmp_path / "d", BASE_2026_05, profile="2026-11").problems} == {"E201"}


def test_the_default_profile_is_2026_11(tmp_path: Path) -> None:
    assert manifest_model(None) is manifest_model("2026-11")
    directory = write(tmp_path, {"m.yaml": BASE})
    assert load_directory(directory) == load_directory(directory, profile=gateway_profile("2026-11"))


def test_2026_05_experiments_have_no_metadata(tmp_path: Path) -> None:
    (experiment,) = load_one(tmp_path, BASE_2026_05, profile="2026-05").experiments
    assert experiment.metadata is None
    assert experiment.variants[1].upstream["opencode_settings"] == {"ai_sdk_provider": "openai-compatible"}
