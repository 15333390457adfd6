"""The manifest language (docs/design.md#manifests) as strict, frozen pydantic models.

Two gateway profiles (`expctl.core.profiles`) read different manifests: `2026-05` the original
upstream, `2026-11` a stricter upstream (headers, compression) and experiment `metadata`.
`manifest_model(profile_name)` gives the model of a profile.

These models are the single source of the manifest's JSON Schema (`expctl schema`). Validation
errors are mapped back to `path:line:col` by the loader; messages here never echo input values,
because a misplaced secret must not be printed back.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, PlainValidator
from pydantic_core import PydanticCustomError

from expctl.core.profiles import gateway_profile

API_VERSION = "expctl/v1"
KIND = "ModelExperiment"
NAME_PATTERN = r"^[a-z0-9-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMA_URL_COMMENT = "# yaml-language-server: $schema=../experiments.schema.json"


class StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


@functools.lru_cache(maxsize=4096)
def _url_problem(value: str) -> str | None:
    """What is wrong with a base URL, if anything. Cached: thousands of manifests share a few
    providers' URLs, and splitting a URL is the costliest check of a manifest."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or _SPACE_OR_CONTROL.search(value):
        return "must be an absolute http(s) URL with a host, e.g. https://api.example.com/v1"
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return "has an invalid port; use 1-65535"
    if parts.username or parts.password:
        return "must not carry credentials; put the key in api_key as a secret reference"
    return None


def _check_url(value: str) -> str:
    problem = _url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_json(value: JsonValue) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must be plain JSON: .nan and .inf have no JSON form")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_json_object(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    _check_json(value)
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_check_json_object)]


HttpUrlText = Annotated[str, AfterValidator(_check_url), Field(json_schema_extra={"format": "uri"})]


class OpencodeSettings(StrictModel):
    ai_sdk_provider: Literal["anthropic", "openai", "openai-compatible", "openrouter", "alibaba"] | None = None


class OpenclawSettings(StrictModel):
    api_adapter: Literal["openai-completions", "openai-responses", "anthropic-messages"] | None = None


class Upstream(StrictModel):
    """The 2026-05 gateway's `model_experiment_variant_version.upstream`: strict, no keys."""

    internal_id: str = Field(min_length=1)
    base_url: HttpUrlText
    opencode_settings: OpencodeSettings | None = None
    openclaw_settings: OpenclawSettings | None = None
    extra_body: JsonObject | None = None
    remove_from_body: list[str] | None = None
    add_cache_breakpoints: bool | None = None
    inject_reasoning_into_content: bool | None = None


class Compression(StrictModel):
    """The 2026-11 gateway's request compression through a second model."""

    enabled: Literal[True]
    base_url: HttpUrlText | None = None
    model_alias: str = Field(min_length=1)
    # The gateway's schema has it, but would store it in plain text: the loader refuses it (E308).
    api_key: str | None = None


class Upstream202611(StrictModel):
    """The 2026-11 gateway's upstream: settings for clients moved to the experiment's metadata."""

    model_config = ConfigDict(title="Upstream")

    internal_id: str = Field(min_length=1)
    base_url: HttpUrlText
    add_cache_breakpoints: bool | None = None
    remove_cache_breakpoints: bool | None = None
    inject_reasoning_into_content: bool | None = None
    extra_headers: dict[str, str] | None = None
    extra_body: JsonObject | None = None
    remove_from_body: list[str] | None = None
    compression: Compression | None = None


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class Reasoning(StrictModel):
    enabled: bool | None = None
    effort: Effort | None = None


class OpencodeVariant(StrictModel):
    verbosity: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    reasoning: Reasoning | None = None


class OpencodeMetadata(StrictModel):
    ai_sdk_provider: Literal["anthropic", "openai", "openai-compatible", "openrouter", "alibaba",
                             "mistral"] | None = None
    family: Literal["claude", "gpt", "gemini", "llama", "mistral"] | None = None
    prompt: Literal["codex", "gemini", "beast", "anthropic", "trinity", "anthropic_without_todo", "ling",
                    "gpt55"] | None = None
    variants: dict[str, OpencodeVariant] | None = None


def _check_number(value: Any) -> int | float:
    # One check and one error for both kinds: a union of int and float reports a wrong type twice.
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise PydanticCustomError("number_type", "Input should be a finite number")
    return value


# A JSON number as written: an int stays an int (a float field would store 200000 as 200000.0).
Number = Annotated[int | float, PlainValidator(_check_number, json_schema_input_type=float)]


class Metadata(StrictModel):
    """`model_experiment.metadata` (2026-11): how the gateway lists the model to its clients."""

    context_length: Number
    max_completion_tokens: Number
    supports_image_input: bool | None = None
    opencode_settings: OpencodeMetadata | None = None


class FromEnv(StrictModel):
    """The secret is the value of an environment variable."""

    from_env: str = Field(pattern=ENV_NAME_PATTERN)


class FromFile(StrictModel):
    """The secret is a file's UTF-8 text, one trailing newline stripped."""

    from_file: str = Field(min_length=1)


class _VariantFields(StrictModel):
    label: str = Field(min_length=1, max_length=64)
    renamed_from: str | None = Field(default=None, min_length=1, max_length=64)
    weight: int = Field(gt=0, le=1_000_000)


class Variant(_VariantFields):
    upstream: Upstream
    api_key: FromEnv | FromFile


class Variant202611(_VariantFields):
    model_config = ConfigDict(title="Variant")

    upstream: Upstream202611
    api_key: FromEnv | FromFile


UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class _ManifestFields(StrictModel):
    """What both profiles' manifests share: one model experiment, identified by `name` for its whole life."""

    apiVersion: Literal["expctl/v1"]  # the manifest spells it so (Kubernetes style)
    kind: Literal["ModelExperiment"]
    name: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=200)
    public_model_id: str = Field(min_length=1, max_length=500)
    display_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: Literal["draft", "active", "paused", "completed"] = "draft"
    archived: bool = False
    # Written by `expctl import`: the id of the existing experiment this manifest adopts (binds) on apply.
    adopt: str | None = Field(default=None, pattern=UUID_PATTERN)


class Manifest(_ManifestFields):
    """A manifest for the 2026-05 gateway."""

    variants: list[Variant] = Field(default_factory=list)


class Manifest202611(_ManifestFields):
    """A manifest for the 2026-11 gateway: its upstream, and the experiment's metadata."""

    model_config = ConfigDict(title="Manifest")

    variants: list[Variant202611] = Field(default_factory=list)
    metadata: Metadata | None = None


AnyManifest = Manifest | Manifest202611

_MODELS: dict[str, type[AnyManifest]] = {"2026-05": Manifest, "2026-11": Manifest202611}
_UPSTREAMS: dict[str, type[Upstream | Upstream202611]] = {"2026-05": Upstream, "2026-11": Upstream202611}


def manifest_model(profile_name: str | None = None) -> type[AnyManifest]:
    """The manifest model of a gateway profile (the default profile's when None)."""
    return _MODELS[gateway_profile(profile_name).name]


def upstream_model(profile_name: str | None = None) -> type[Upstream | Upstream202611]:
    """The upstream model of a gateway profile (the default profile's when None)."""
    return _UPSTREAMS[gateway_profile(profile_name).name]


def manifest_json_schema(profile_name: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a profile's manifest (the default profile's when None)."""
    schema = manifest_model(profile_name).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://expctl.dev/schemas/manifest-v1.json"
    return schema


def is_valid_name(value: str) -> bool:
    return re.fullmatch(NAME_PATTERN, value) is not None
