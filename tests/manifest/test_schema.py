"""The committed experiments.schema.json matches the model, and every example manifest obeys it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from expctl.core.manifest.model import SCHEMA_URL_COMMENT, manifest_json_schema
from expctl.core.profiles import DEFAULT_PROFILE

from .helpers import BASE, BASE_2026_05

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "experiments.schema.json"
EXAMPLES = sorted((REPO / "experiments.d").glob("*.y*ml"))


def committed_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def test_committed_schema_is_in_sync_with_the_model() -> None:
    assert committed_schema() == manifest_json_schema(), (
        "experiments.schema.json is stale: run `expctl schema > experiments.schema.json`"
    )


def test_committed_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(committed_schema())


def test_there_are_examples() -> None:
    assert EXAMPLES, "experiments.d/ holds no example manifests"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_the_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(committed_schema())
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert documents
    for document in documents:
        assert [e.message for e in validator.iter_errors(document)] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_starts_with_the_schema_comment(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# yaml-language-server: $schema=")
    assert first_line == SCHEMA_URL_COMMENT
    target = first_line.split("$schema=", 1)[1]
    assert (path.parent / target).resolve() == SCHEMA_FILE


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("weight: 1\n    upstream:\n      internal_id: partner-checkpoint-rc1", "weight: 0\n    upstream:\n"
         "      internal_id: partner-checkpoint-rc1"),
        ("status: draft", "status: running"),
        ("name: exp-a", "name: Exp_A"),
        ("{from_env: PARTNER_RC1_KEY}", "{from_env: PARTNER_RC1_KEY, from_file: /x}"),
        ("      base_url: https://partner.example.com/v1\n    api_key: {from_env",
         "      base_url: https://partner.example.com/v1\n      opencode_settings: {}\n    api_key: {from_env"),
        ("{ai_sdk_provider: openai-compatible}", "{ai_sdk_provider: openai-compatible, model: x}"),
        ("  max_completion_tokens: 32000\n", ""),
        ("model_alias: small-summarizer}", "model_alias: small-summarizer, enabled: false}"),
    ],
    ids=["weight-0", "status", "name", "both-refs", "opencode-in-upstream", "metadata-nested-strict",
         "metadata-required", "compression-disabled"],
)
def test_schema_rejects_what_the_loader_rejects(old: str, new: str) -> None:
    """The schema an editor uses agrees with the loader on the common mistakes."""
    validator = jsonschema.Draft202012Validator(committed_schema())
    assert list(validator.iter_errors(yaml.safe_load(BASE))) == []
    assert BASE.count(old) == 1
    assert list(validator.iter_errors(yaml.safe_load(BASE.replace(old, new))))


def test_the_committed_schema_is_the_default_profiles() -> None:
    assert DEFAULT_PROFILE == "2026-11"
    assert committed_schema() == manifest_json_schema("2026-11")
    assert manifest_json_schema("2026-05") != manifest_json_schema("2026-11")


@pytest.mark.parametrize(("profile", "valid", "invalid"), [("2026-11", BASE, BASE_2026_05),
                                                           ("2026-05", BASE_2026_05, BASE)])
def test_each_profile_has_its_own_schema(profile: str, valid: str, invalid: str) -> None:
    """Each profile's schema accepts its own upstream shape and refuses the other profile's
    (2026-11: client settings in the upstream; 2026-05: metadata, extra_headers, compression)."""
    schema = manifest_json_schema(profile)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(valid))) == []
    assert list(validator.iter_errors(yaml.safe_load(invalid)))


def test_schema_2026_05_has_no_metadata_and_2026_11_no_client_settings_in_the_upstream() -> None:
    old, new = manifest_json_schema("2026-05"), manifest_json_schema("2026-11")
    assert "metadata" not in old["properties"] and "metadata" in new["properties"]
    assert set(new["$defs"]["Metadata"]["required"]) == {"context_length", "max_completion_tokens"}
    upstream = new["$defs"]["Upstream202611"]["properties"]
    assert {"extra_headers", "compression", "remove_cache_breakpoints"} <= set(upstream)
    assert not {"opencode_settings", "openclaw_settings"} & set(upstream)
