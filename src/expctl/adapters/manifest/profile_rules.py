"""Rules that depend on the gateway profile, checked on the parsed document — adapter.

What one gateway version accepts and another does not (docs/design.md#manifests, gateway
profiles): public ids reserved for the gateway operator's own models, `metadata` under a gateway
without that column, and credentials written into the upstream blob, which the gateway stores in
plain text. Each problem is located; values are never echoed (a credential may be among them).
"""

from __future__ import annotations

from typing import Any

from expctl.adapters.manifest.yamlread import Document
from expctl.core.codes import problem
from expctl.core.errors import Problem
from expctl.core.manifest.model import upstream_model
from expctl.core.manifest.rules import shown
from expctl.core.manifest.secretscan import find_key_like
from expctl.core.profiles import GatewayProfile

# Headers that carry credentials (compared in lower case): the variant's api_key is the one place
# for those, resolved from a secret reference and stored encrypted.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"})

Path = tuple[str | int, ...]


def profile_problems(doc: Document, profile: GatewayProfile) -> tuple[list[Problem], set[Path]]:
    """The document's problems under `profile`, and the paths whose schema errors they replace."""
    problems = _reserved_prefix(doc, profile)
    skip: set[Path] = set()
    if "metadata" in doc.data and not profile.has_metadata:
        problems.append(problem("E213", doc.location_of(("metadata",), prefer_key=True),
                                f"metadata is not read by the gateway of profile {profile.name}"))
        skip.add(("metadata",))
    if "extra_headers" in upstream_model(profile.name).model_fields:  # elsewhere E201 says it all
        problems += _upstream_credentials(doc)
    return problems, skip


def _reserved_prefix(doc: Document, profile: GatewayProfile) -> list[Problem]:
    public_id = doc.data.get("public_model_id")
    if not isinstance(public_id, str) or find_key_like(public_id):  # a key-like id is E303 already
        return []
    lowered = public_id.lower()  # the gateway compares lower-cased ids
    for prefix in profile.reserved_prefixes:
        if lowered.startswith(prefix):
            return [problem("E212", doc.location_of(("public_model_id",)),
                            f"public_model_id {shown(public_id)} starts with {shown(prefix)}, a prefix the "
                            f"gateway of profile {profile.name} reserves for its operator's own models")]
    return []


def upstreams(doc: Document) -> list[tuple[Path, dict[Any, Any]]]:
    """Each variant's upstream mapping with its path (variants or upstreams of the wrong type are
    the schema's problem)."""
    variants = doc.data.get("variants")
    found: list[tuple[Path, dict[Any, Any]]] = []
    for index, variant in enumerate(variants if isinstance(variants, list) else []):
        upstream = variant.get("upstream") if isinstance(variant, dict) else None
        if isinstance(upstream, dict):
            found.append((("variants", index, "upstream"), upstream))
    return found


def _upstream_credentials(doc: Document) -> list[Problem]:
    """Credential headers in `extra_headers` (E307) and `compression.api_key` (E308)."""
    problems = []
    for path, upstream in upstreams(doc):
        headers = upstream.get("extra_headers")
        for name in headers if isinstance(headers, dict) else {}:
            if isinstance(name, str) and name.strip().lower() in CREDENTIAL_HEADERS:
                problems.append(problem(
                    "E307", doc.location_of((*path, "extra_headers", name), prefer_key=True),
                    f"extra_headers must not carry the credential header {shown(name)}"))
        compression = upstream.get("compression")
        if isinstance(compression, dict) and "api_key" in compression:
            problems.append(problem("E308", doc.location_of((*path, "compression", "api_key"), prefer_key=True),
                                    "compression.api_key would be stored by the gateway in plain text"))
    return problems
