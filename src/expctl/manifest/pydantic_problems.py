"""Maps pydantic validation errors to located problems with stable codes.

Only pydantic's own message text is used (it describes what was expected, never the input), and
input values are never echoed, so a key pasted into the wrong field is not printed back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from expctl.errors import Problem
from expctl.manifest.secretscan import find_key_like
from expctl.manifest.yamlread import Document

_UPSTREAM_FORBIDDEN_HINTS = {
    "api_key": "an upstream has no api_key: set the variant's api_key to {from_env: NAME} or {from_file: PATH}",
    "extra_headers": "an upstream has no extra_headers: the gateway does not forward custom headers",
}

# The api_key union's members, and the key that selects each one.
_UNION_TAGS = {"FromEnv": "from_env", "FromFile": "from_file"}

_TYPE_CODES = {
    "missing": "E202",
    "literal_error": "E203",
    "enum": "E203",
    "greater_than": "E205",
    "greater_than_equal": "E205",
    "less_than_equal": "E206",
    "less_than": "E206",
    "string_too_short": "E206",
    "string_too_long": "E206",
    "too_short": "E206",
    "too_long": "E206",
    "string_pattern_mismatch": "E207",
    "value_error": "E209",
    "invalid-json-value": "E204",
}


def _code(error_type: str) -> str:
    if error_type == "extra_forbidden":
        return "E201"
    if error_type.endswith("_type") or error_type.endswith("_parsing") or error_type == "model_attributes_type":
        return "E204"
    return _TYPE_CODES.get(error_type, "E299")


def _shown_part(part: str | int) -> str:
    # A path may pass through extra_body keys, and a key can be a pasted secret.
    text = str(part)
    return "(a key-like name)" if find_key_like(text) else text[:64]


def _field_name(loc: tuple[str | int, ...]) -> str:
    return ".".join(_shown_part(p) for p in loc) or "document"


def _hint(code: str, loc: tuple[str | int, ...]) -> str:
    last = loc[-1] if loc else ""
    if code == "E201" and "upstream" in loc and last in _UPSTREAM_FORBIDDEN_HINTS:
        return _UPSTREAM_FORBIDDEN_HINTS[str(last)]
    return {
        "E201": "remove the field or fix its spelling; `expctl schema` lists every field",
        "E202": "add the field",
        "E203": "use one of the allowed values",
        "E204": "fix the value's type (quote strings, no quotes around numbers and booleans)",
        "E205": "weights are positive integers; remove a variant instead of giving it weight 0",
        "E206": "bring the value within the allowed range",
        "E207": "names use only lowercase letters, digits and '-'" if last == "name"
        else "environment variable names use letters, digits and '_'",
        "E209": "fix the value as the message says",
    }.get(code, "see `expctl schema`")


def _message(code: str, error_type: str, msg: str, loc: tuple[str | int, ...]) -> str:
    field = _field_name(loc)
    if code == "E201":
        key = str(loc[-1]) if loc else "?"
        shown = "(a key-like name)" if find_key_like(key) else f"'{key[:64]}'"
        return f"unknown field {shown} in {_field_name(loc[:-1])}"
    if code == "E202":
        return f"missing required field '{field}'"
    if code == "E205" and loc and loc[-1] == "weight":
        return f"{field}: weight must be a positive integer"
    return f"{field}: {msg.removeprefix('Value error, ')}"


def _value_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict | list):
            return None
        try:
            data = data[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _union_member(raw_loc: tuple[str | int, ...]) -> tuple[int, str] | None:
    """Where pydantic put an api_key union member's name (e.g. 'FromEnv') in `raw_loc`, if it did."""
    for index in range(1, len(raw_loc)):
        part = raw_loc[index]
        if raw_loc[index - 1] == "api_key" and isinstance(part, str) and part in _UNION_TAGS:
            return index, part
    return None


def _other_union_member(raw_loc: tuple[str | int, ...], doc: Document) -> bool:
    """True for an error about a union member the document did not choose (e.g. FromFile when
    api_key says from_env): reporting it would only add noise such as "missing from_file"."""
    member = _union_member(raw_loc)
    if member is None:
        return False
    chosen = _value_at(doc.data, raw_loc[: member[0]])
    return isinstance(chosen, dict) and _UNION_TAGS[member[1]] not in chosen


def problems_from_validation(
    err: ValidationError, doc: Document, skip_prefixes: Iterable[tuple[str | int, ...]] = ()
) -> list[Problem]:
    skipped = tuple(skip_prefixes)
    problems: list[Problem] = []
    for item in err.errors(include_input=False, include_url=False):
        if _other_union_member(item["loc"], doc):
            continue
        # Drop pydantic's union member name (e.g. 'FromEnv') so paths match the document.
        member = _union_member(item["loc"])
        loc = item["loc"] if member is None else item["loc"][: member[0]] + item["loc"][member[0] + 1 :]
        if any(loc[: len(prefix)] == prefix for prefix in skipped):
            continue
        error_type = item["type"]
        code = _code(error_type)
        location = doc.location_of(loc, prefer_key=code == "E201")
        problem = Problem(code, location, _message(code, error_type, item["msg"], loc), _hint(code, loc))
        if problem not in problems:
            problems.append(problem)
    return problems
