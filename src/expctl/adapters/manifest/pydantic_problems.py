"""Maps pydantic validation errors to located problems with stable codes.

Only pydantic's own message text is used (it describes what was expected, never the input), and
input values are never echoed, so a key pasted into the wrong field is not printed back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from expctl.adapters.manifest.yamlread import Document
from expctl.core.codes import problem
from expctl.core.errors import Location, Problem
from expctl.core.manifest.problem_cap import MAX_PROBLEMS_PER_FILE, more_problems
from expctl.core.manifest.secretscan import find_key_like

_UPSTREAM_FORBIDDEN_HINTS = {
    "api_key": "an upstream has no api_key: set the variant's api_key to {from_env: NAME} or {from_file: PATH}",
    # Profile 2026-05: fields its gateway does not know (the 2026-11 one does).
    "extra_headers": "an upstream has no extra_headers under gateway profile 2026-05: that gateway does not "
                     "forward custom headers (the 2026-11 one does: --gateway-profile 2026-11)",
    "compression": "an upstream has no compression under gateway profile 2026-05 (the 2026-11 one does)",
    "remove_cache_breakpoints": "an upstream has no remove_cache_breakpoints under gateway profile 2026-05 "
                                "(the 2026-11 one does)",
    # Profile 2026-11: a 2026-05 manifest's client settings.
    "opencode_settings": "opencode_settings moved out of the upstream: write it once for the experiment as "
                         "metadata.opencode_settings (metadata also needs context_length and max_completion_tokens)",
    "openclaw_settings": "the gateway of profile 2026-11 has no openclaw_settings: remove it",
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


@functools.cache  # a few dozen error types, looked up once per error
def _code(error_type: str) -> str:
    if error_type == "extra_forbidden":
        return "E201"
    if error_type.endswith("_type") or error_type.endswith("_parsing") or error_type == "model_attributes_type":
        return "E204"
    return _TYPE_CODES.get(error_type, "E299")


def _shown_part(part: str | int) -> str:
    if isinstance(part, int):  # a list index: never a secret
        return str(part)
    # A path may pass through extra_body keys, and a key can be a pasted secret.
    return "(a key-like name)" if find_key_like(part) else part[:64]


def _field_name(loc: tuple[str | int, ...]) -> str:
    return ".".join(_shown_part(p) for p in loc) or "document"


def _hint(code: str, loc: tuple[str | int, ...]) -> str | None:
    """A hint more precise than the code's default (`expctl.core.codes`), where the field calls for one."""
    last = loc[-1] if loc else ""
    if code == "E201" and "upstream" in loc and last in _UPSTREAM_FORBIDDEN_HINTS:
        return _UPSTREAM_FORBIDDEN_HINTS[str(last)]
    if code == "E207" and last != "name":  # the pattern of from_env, not of a manifest name
        return "environment variable names use letters, digits and '_'"
    return None


def _message(code: str, msg: str, loc: tuple[str | int, ...]) -> str:
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
    if "api_key" not in raw_loc:  # most errors: one C-level scan instead of a Python loop
        return None
    for index in range(1, len(raw_loc)):
        part = raw_loc[index]
        if raw_loc[index - 1] == "api_key" and isinstance(part, str) and part in _UNION_TAGS:
            return index, part
    return None


def _document_loc(raw_loc: tuple[str | int, ...], doc: Document) -> tuple[str | int, ...] | None:
    """The document path an error is about, without pydantic's union member name (e.g. 'FromEnv');
    None for an error about a member the document did not choose (e.g. FromFile when api_key says
    from_env): reporting it would only add noise such as "missing from_file"."""
    member = _union_member(raw_loc)
    if member is None:
        return raw_loc
    index, name = member
    chosen = _value_at(doc.data, raw_loc[:index])
    if isinstance(chosen, dict) and _UNION_TAGS[name] not in chosen:
        return None
    return raw_loc[:index] + raw_loc[index + 1 :]


# An error as what its problem is built from: where, code, document path, pydantic's message.
_Located = tuple[Location, str, tuple[str | int, ...], str]


def _located_errors(err: ValidationError, doc: Document,
                    skip_prefixes: Iterable[tuple[str | int, ...]]) -> list[_Located]:
    """Each error that is not skipped, located. This runs for every error of a file with hundreds
    of thousands of them: the common case (a place the reader recorded) is inline."""
    # A set, not a list: a file may hold as many skipped prefixes as errors, and a scan of the
    # prefixes per error made validation quadratic.
    skipped = frozenset(skip_prefixes)
    lengths = sorted({len(prefix) for prefix in skipped})
    keys, values = doc.all_locations()
    located = []
    for item in err.errors(include_url=False, include_context=False, include_input=False):
        raw: tuple[str | int, ...] = item["loc"]
        loc = _document_loc(raw, doc) if "api_key" in raw else raw
        if loc is None or (lengths and any(loc[:length] in skipped for length in lengths)):
            continue
        code = _code(item["type"])
        at_key = code == "E201"
        location = (keys if at_key else values).get(loc) or doc.location_of(loc, prefer_key=at_key)
        located.append((location, code, loc, item["msg"]))
    return located


def _problem(entry: _Located) -> Problem:
    location, code, loc, msg = entry
    return problem(code, location, _message(code, msg, loc), _hint(code, loc))


def _position(entry: _Located) -> tuple[Location, str]:
    return entry[0], entry[1]


def problems_from_validation(
    err: ValidationError, doc: Document, skip_prefixes: Iterable[tuple[str | int, ...]] = (),
    limit: int | None = MAX_PROBLEMS_PER_FILE,
) -> list[Problem]:
    """Every error as a located problem, once each, in pydantic's order (sorted, when capped);
    errors at or under a path of `skip_prefixes` are left out (the caller reported them already).

    With more errors than `limit` (by default, as many as a report lists of one file), only the
    first ones in sorted order get a problem of their own (at least `limit` distinct ones, and all
    at the same place and code as the last of them), and one `MoreProblems` counts the rest:
    locating an error is cheap, its message is not, and a report lists only a file's first ones.
    """
    located = _located_errors(err, doc, skip_prefixes)
    if limit is None or len(located) <= limit:
        return list(dict.fromkeys(map(_problem, located)))  # deduplicated, in order
    located.sort(key=_position)
    itemized: dict[Problem, None] = {}
    last = _position(located[0])
    for index, entry in enumerate(located):
        if len(itemized) >= limit and _position(entry) != last:
            # Everything from here sorts after every itemized problem. Counted as distinct errors:
            # equal to distinct problems but for names cut short or withheld in messages.
            rest = len(set(located[index:]))
            return [*itemized, more_problems(entry[0], rest)]
        itemized[_problem(entry)] = None
        last = _position(entry)
    return list(itemized)
