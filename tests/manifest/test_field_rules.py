"""Field rules of the model (E201 to E209): each with a failing case at an exact position and a passing case.

A few YAML 1.1 surprises are pinned here on purpose: unquoted `yes`/`on` are booleans (so
`archived: yes` means archived: true, and is accepted), while `display_name: no` is a boolean and
therefore a type error. Quoting makes them strings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expctl.adapters.manifest.pydantic_problems import _UPSTREAM_FORBIDDEN_HINTS

from .helpers import BASE, BASE_2026_05, Found, assert_clean, edit, load_one, only_problem, unmark

UPSTREAM_1 = "      base_url: https://partner.example.com/v1\n    api_key: {from_env: PARTNER_RC1_KEY}"
WEIGHT_1 = "    weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1"


def in_upstream(line: str) -> str:
    """BASE with `line` added to the first variant's upstream."""
    return edit(BASE, UPSTREAM_1, UPSTREAM_1.replace("\n    api_key", f"\n      {line}\n    api_key"))


def in_upstream_2026_05(line: str) -> str:
    """BASE_2026_05 with `line` added to the first variant's upstream."""
    return edit(BASE_2026_05, UPSTREAM_1, UPSTREAM_1.replace("\n    api_key", f"\n      {line}\n    api_key"))


def weight(value: str) -> str:
    return edit(BASE, WEIGHT_1, WEIGHT_1.replace("weight: 1", f"weight: {value}"))


# (id, YAML with « at the expected position, expected code)
FAILING: list[tuple[str, str, str]] = [
    # E201 unknown field
    ("E201 top level", BASE + "«colour: red\n", "E201"),
    ("E201 in a variant", edit(BASE, WEIGHT_1, "    «share: 5\n" + WEIGHT_1), "E201"),
    ("E201 api_key in upstream", in_upstream("«api_key: {from_env: X}"), "E201"),
    ("E201 in metadata.opencode_settings", edit(BASE, "{ai_sdk_provider: openai-compatible}",
                                       "{ai_sdk_provider: openai, «model: x}"), "E201"),
    ("E302 unknown member in api_key ref", edit(BASE, "{from_file: /run/secrets/partner-rc2}",
                                                "«{from_file: /run/secrets/partner-rc2, from_vault: x}"), "E302"),
    # E202 missing field: reported at the mapping that lacks it
    ("E202 display_name", "# c\n«" + edit(BASE.split("\n", 1)[1], "display_name: Preview A\n", ""), "E202"),
    ("E202 weight", edit(BASE, "  - label: control\n    weight: 1\n", "  - «label: control\n"), "E202"),
    ("E202 internal_id", edit(BASE, "      internal_id: partner-checkpoint-rc1\n      base_url",
                              "      «base_url"), "E202"),
    ("E202 api_key", edit(BASE, "    api_key: {from_file: /run/secrets/partner-rc2}\n", "")
     .replace("  - label: treatment", "  - «label: treatment"), "E202"),
    ("E202 apiVersion", "«" + edit(BASE.split("\n", 1)[1], "apiVersion: expctl/v1\n", ""), "E202"),
    # E203 not one of the allowed values
    ("E203 status", edit(BASE, "status: draft", "status: «running"), "E203"),
    ("E203 status case", edit(BASE, "status: draft", "status: «Active"), "E203"),
    ("E203 ai_sdk_provider", edit(BASE, "{ai_sdk_provider: openai-compatible}", "{ai_sdk_provider: «azure}"), "E203"),
    ("E203 apiVersion", edit(BASE, "apiVersion: expctl/v1", "apiVersion: «expctl/v2"), "E203"),
    ("E203 kind", edit(BASE, "kind: ModelExperiment", "kind: «Experiment"), "E203"),
    # E204 wrong type (strict: no coercion)
    ("E204 weight as string", edit(BASE, WEIGHT_1, WEIGHT_1.replace("weight: 1", 'weight: «"1"')), "E204"),
    ("E204 weight as float", weight("«1.5"), "E204"),
    ("E204 weight as bool", weight("«true"), "E204"),
    ("E204 archived quoted 'yes'", edit(BASE, "archived: false", "archived: «'yes'"), "E204"),
    ("E204 archived as int", edit(BASE, "archived: false", "archived: «1"), "E204"),
    ("E204 display_name: no (YAML 1.1 bool)", edit(BASE, "display_name: Preview A", "display_name: «no"), "E204"),
    ("E204 display_name as date", edit(BASE, "display_name: Preview A", "display_name: «2024-01-01"), "E204"),
    ("E204 variants as mapping", edit(BASE.split("  - label: control")[0], "variants:\n", "variants: «{}\n"),
     "E204"),
    ("E204 upstream as string", edit(BASE, "    upstream:\n      internal_id: partner-checkpoint-rc1\n"
                                     "      base_url: https://partner.example.com/v1\n",
                                     "    upstream: «partner-checkpoint-rc1\n"), "E204"),
    ("E204 extra_body as list", in_upstream("extra_body: «[1, 2]"), "E204"),
    ("E204 extra_body date value", in_upstream("extra_body: {since: «2024-01-01}"), "E204"),
    ("E204 remove_from_body item", in_upstream("remove_from_body: [top_k, «3]"), "E204"),
    ("E204 add_cache_breakpoints", in_upstream("add_cache_breakpoints: «'true'"), "E204"),
    ("E204 from_env as number", edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: «12}"), "E204"),
    # E205 weight must be positive
    ("E205 weight 0", weight("«0"), "E205"),
    ("E205 weight negative", weight("«-3"), "E205"),
    # E206 out of range
    ("E206 display_name too long", edit(BASE, "display_name: Preview A", "display_name: «" + "d" * 201), "E206"),
    ("E206 display_name empty", edit(BASE, "display_name: Preview A", "display_name: «''"), "E206"),
    ("E206 label too long", edit(BASE, "label: control", "label: «" + "l" * 65), "E206"),
    ("E206 label empty", edit(BASE, "label: control", "label: «''"), "E206"),
    ("E206 renamed_from too long", edit(BASE, "  - label: control\n", "  - label: control\n    renamed_from: «"
                                       + "r" * 65 + "\n"), "E206"),
    ("E206 description too long", edit(BASE, "description: Compare two checkpoints",
                                       "description: «" + "x" * 2001), "E206"),
    ("E206 name too long", edit(BASE, "name: exp-a", "name: «" + "n" * 201), "E206"),
    ("E206 public_model_id too long", edit(BASE, "public_model_id: preview/preview-a",
                                           "public_model_id: «preview/" + "p" * 500), "E206"),
    ("E206 weight too big", weight("«1000001"), "E206"),
    ("E206 weight huge", weight("«" + "9" * 40), "E206"),
    ("E206 internal_id empty", edit(BASE, "internal_id: partner-checkpoint-rc1", "internal_id: «''"), "E206"),
    ("E206 from_file empty", edit(BASE, "{from_file: /run/secrets/partner-rc2}", "{from_file: «''}"), "E206"),
    # E207 pattern
    ("E207 name uppercase", edit(BASE, "name: exp-a", "name: «Exp-A"), "E207"),
    ("E207 name underscore", edit(BASE, "name: exp-a", "name: «exp_a"), "E207"),
    ("E207 name space", edit(BASE, "name: exp-a", "name: «'exp a'"), "E207"),
    ("E207 name unicode", edit(BASE, "name: exp-a", "name: «expé"), "E207"),
    ("E207 env name leading digit", edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: «1KEY}"), "E207"),
    ("E207 env name dash", edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: «MY-KEY}"), "E207"),
    ("E207 env name with $", edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: «$KEY}"), "E207"),
    # E209 URL
    ("E209 ftp", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                      "base_url: «ftp://partner.example.com/v1\n    api_key: {from_env"), "E209"),
    ("E209 relative", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                           "base_url: «/v1\n    api_key: {from_env"), "E209"),
    ("E209 no host", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                          "base_url: «'https:///v1'\n    api_key: {from_env"), "E209"),
    ("E209 credentials", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                              "base_url: «https://user:pw@partner.example.com/v1\n    api_key: {from_env"), "E209"),
    ("E209 bad port", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                           "base_url: «https://partner.example.com:99999/v1\n    api_key: {from_env"), "E209"),
    ("E209 whitespace", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                             "base_url: «'https://partner.example.com/v1 x'\n    api_key: {from_env"), "E209"),
    ("E209 NaN in extra_body", in_upstream("extra_body: «{temperature: .nan}"), "E209"),
    ("E209 infinity in extra_body", in_upstream("extra_body: «{limits: [1, -.inf]}"), "E209"),
]


@pytest.mark.parametrize(("text", "code"), [(t, c) for _, t, c in FAILING], ids=[i for i, _, _ in FAILING])
def test_failing_field_rule(tmp_path: Path, text: str, code: str) -> None:
    source, where = unmark(text)
    result = load_one(tmp_path, source)
    assert only_problem(result) == Found(code, "m.yaml", *where)
    assert result.experiments == ()


PASSING: list[tuple[str, str]] = [
    ("base", BASE),
    ("every status", "---\n".join(
        BASE.replace("status: draft", f"status: {s}").replace("exp-a", f"exp-{s}").replace("preview-a", f"p-{s}")
        for s in ("draft", "active", "paused", "completed"))),
    ("every provider", "---\n".join(
        BASE.replace("openai-compatible", p).replace("exp-a", f"exp-{p}") for p in
        ("anthropic", "openai", "openai-compatible", "openrouter", "alibaba", "mistral"))),
    ("null settings", edit(BASE, "{ai_sdk_provider: openai-compatible}", "{ai_sdk_provider: null}")),
    ("every upstream field", in_upstream(
        "extra_body: {reasoning: {effort: high}, n: [1, 2.5, null, true, 'x'], big: 9007199254740991}\n"
        "      remove_from_body: [top_k, seed]\n      add_cache_breakpoints: true\n"
        "      inject_reasoning_into_content: false")),
    ("weight bounds", weight("1000000")),
    ("archived: yes is YAML 1.1 true", edit(BASE, "archived: false", "archived: yes")),
    ("archived: on is YAML 1.1 true", edit(BASE, "archived: false", "archived: on")),
    ("quoted 'no' is a string", edit(BASE, "display_name: Preview A", "display_name: 'no'")),
    ("lengths at the limit", edit(edit(edit(BASE, "display_name: Preview A", "display_name: " + "d" * 200),
                                       "label: control", "label: " + "l" * 64),
                                  "description: Compare two checkpoints", "description: " + "x" * 2000)),
    ("no description", edit(BASE, "description: Compare two checkpoints\n", "")),
    ("null description", edit(BASE, "description: Compare two checkpoints", "description: null")),
    ("no status, archived, variants", BASE.split("status: draft")[0]),
    ("empty variants", edit(BASE.split("  - label: control")[0], "variants:\n", "variants: []\n")),
    ("env name forms", edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: _lower_Case9}")),
    ("http url with port, query", edit(BASE, "base_url: https://partner.example.com/v1\n    api_key: {from_env",
                                       "base_url: 'http://10.0.0.7:8080/v1?region=eu#x'\n    api_key: {from_env")),
    ("renamed_from", edit(BASE, "  - label: control\n", "  - label: control\n    renamed_from: baseline\n")),
]


# The 2026-05 upstream, under its own profile: (id, YAML with « at the expected position, code).
FAILING_2026_05: list[tuple[str, str, str]] = [
    ("E201 extra_headers in upstream", in_upstream_2026_05("«extra_headers: {X-Team: core}"), "E201"),
    ("E201 compression in upstream", in_upstream_2026_05("«compression: {enabled: true, model_alias: m}"), "E201"),
    ("E201 in opencode_settings", edit(BASE_2026_05, "{ai_sdk_provider: openai-compatible}",
                                       "{ai_sdk_provider: openai, «model: x}"), "E201"),
    ("E203 ai_sdk_provider", edit(BASE_2026_05, "{ai_sdk_provider: openai-compatible}",
                                  "{ai_sdk_provider: «mistral}"), "E203"),
    ("E203 api_adapter", edit(BASE_2026_05, "{api_adapter: openai-completions}", "{api_adapter: «openai-chat}"),
     "E203"),
    ("E201 remove_cache_breakpoints", in_upstream_2026_05("«remove_cache_breakpoints: true"), "E201"),
]


@pytest.mark.parametrize(("text", "code"), [(t, c) for _, t, c in FAILING_2026_05],
                         ids=[i for i, _, _ in FAILING_2026_05])
def test_failing_field_rule_2026_05(tmp_path: Path, text: str, code: str) -> None:
    source, where = unmark(text)
    result = load_one(tmp_path, source, profile="2026-05")
    assert only_problem(result) == Found(code, "m.yaml", *where)


PASSING_2026_05: list[tuple[str, str]] = [
    ("base", BASE_2026_05),
    ("every provider", "---\n".join(
        BASE_2026_05.replace("openai-compatible", p).replace("exp-a", f"exp-{p}") for p in
        ("anthropic", "openai", "openai-compatible", "openrouter", "alibaba"))),
    ("every adapter", "---\n".join(
        BASE_2026_05.replace("api_adapter: openai-completions", f"api_adapter: {a}").replace("exp-a", f"exp-{a}")
        for a in ("openai-completions", "openai-responses", "anthropic-messages"))),
    ("null settings", edit(BASE_2026_05, "{ai_sdk_provider: openai-compatible}", "{ai_sdk_provider: null}")),
]


@pytest.mark.parametrize("text", [t for _, t in PASSING_2026_05], ids=[i for i, _ in PASSING_2026_05])
def test_passing_field_rule_2026_05(tmp_path: Path, text: str) -> None:
    assert_clean(load_one(tmp_path, text, profile="2026-05"), experiments=text.count("\n---\n") + 1)


@pytest.mark.parametrize("text", [t for _, t in PASSING], ids=[i for i, _ in PASSING])
def test_passing_field_rule(tmp_path: Path, text: str) -> None:
    result = load_one(tmp_path, text)
    assert_clean(result, experiments=max(1, text.count("\n---\n") + 1))


def test_yaml_11_booleans_are_booleans(tmp_path: Path) -> None:
    """`archived: yes` is accepted as True (YAML 1.1); pinned so that a parser switch is noticed."""
    (experiment,) = load_one(tmp_path, edit(BASE, "archived: false", "archived: yes")).experiments
    assert experiment.archived is True
    (experiment,) = load_one(tmp_path / "off", edit(BASE, "archived: false", "archived: off")).experiments
    assert experiment.archived is False


def test_defaults(tmp_path: Path) -> None:
    (experiment,) = load_one(tmp_path, BASE.split("description:")[0]).experiments
    assert (experiment.status, experiment.archived, experiment.variants, experiment.description) == (
        "draft", False, (), None)


def test_upstream_is_kept_as_written_without_nulls(tmp_path: Path) -> None:
    text = in_upstream("extra_body: {reasoning: {effort: high}, big: 9007199254740991}")
    experiment = load_one(tmp_path, text).experiments[0]
    assert dict(experiment.variants[0].upstream) == {
        "internal_id": "partner-checkpoint-rc1",
        "base_url": "https://partner.example.com/v1",
        "extra_body": {"reasoning": {"effort": "high"}, "big": 9007199254740991},
    }


@pytest.mark.parametrize(("field", "profile"), [("api_key", "2026-11"), ("api_key", "2026-05"),
                                               ("extra_headers", "2026-05")])
def test_forbidden_upstream_fields_have_specific_hints(tmp_path: Path, field: str, profile: str) -> None:
    text = in_upstream(f"{field}: {{a: b}}") if profile == "2026-11" else in_upstream_2026_05(f"{field}: {{a: b}}")
    result = load_one(tmp_path, text, profile=profile)
    (problem,) = result.problems
    assert problem.code == "E201"
    assert problem.hint == _UPSTREAM_FORBIDDEN_HINTS[field]
    assert problem.message == f"unknown field '{field}' in variants.0.upstream"


def test_every_problem_of_a_document_is_reported(tmp_path: Path) -> None:
    text = weight("0").replace("status: draft", "status: running").replace("name: exp-a", "name: Exp_A")
    text = text.replace("{from_env: PARTNER_RC1_KEY}", "{from_env: 1KEY}") + "colour: red\n"
    codes = sorted(p.code for p in load_one(tmp_path, text).problems)
    assert codes == ["E201", "E203", "E205", "E207", "E207"]


def test_api_key_reference_reports_only_the_chosen_member(tmp_path: Path) -> None:
    """`{from_env: 1KEY}` is about from_env; it must not also say 'from_file missing'."""
    result = load_one(tmp_path, edit(BASE, "{from_env: PARTNER_RC1_KEY}", "{from_env: 1KEY}"))
    (problem,) = result.problems
    assert problem.message.startswith("variants.0.api_key.from_env:")
    assert "letters, digits and '_'" in problem.hint


def test_messages_and_hints(tmp_path: Path) -> None:
    result = load_one(tmp_path, weight("0"))
    (problem,) = result.problems
    assert problem.message == "variants.0.weight: weight must be a positive integer"
    assert "remove a variant instead" in problem.hint
    (problem,) = load_one(tmp_path / "b", edit(BASE, "name: exp-a", "name: Exp")).problems
    assert "lowercase letters, digits and '-'" in problem.hint
    (problem,) = load_one(tmp_path / "c", BASE.replace("display_name: Preview A\n", "")).problems
    assert problem.message == "missing required field 'display_name'"


# --- what the gateway's request path would break (both gateway profiles) ------------------------------

@pytest.mark.parametrize(("text", "code"), [
    (edit(BASE, "public_model_id: preview/preview-a", "public_model_id: «preview/Preview-A"), "E210"),
    (in_upstream("extra_body: {seed: «9007199254740993}"), "E211"),
    (in_upstream("extra_body: {limits: [1, «-9007199254740992]}"), "E211"),
])
def test_what_the_gateway_could_never_read_as_written_is_located(tmp_path: Path, text: str, code: str) -> None:
    source, where = unmark(text)
    assert only_problem(load_one(tmp_path, source)) == Found(code, "m.yaml", *where)


@pytest.mark.parametrize("line", ["extra_body: {seed: 9007199254740991}", "extra_body: {seed: '9007199254740993'}",
                                  "extra_body: {ratio: 1.0e300}"])
def test_safe_integers_strings_and_floats_pass(tmp_path: Path, line: str) -> None:
    assert_clean(load_one(tmp_path, in_upstream(line)))


def test_the_upper_case_hint_gives_the_lower_case_id(tmp_path: Path) -> None:
    source = edit(BASE, "public_model_id: preview/preview-a", "public_model_id: preview/Preview-A")
    [found] = load_one(tmp_path, source).problems
    assert "preview/preview-a" in found.hint and "no client could reach" in found.message
