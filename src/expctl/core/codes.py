"""Every problem code expctl reports, in one place — pure core.

A code is a promise to users: scripts match on it, and the README lists it. This registry gives
each code its title (the README table's text), the hint shown when a rule has nothing more
specific to say, and the section of the documentation that explains the rule. Rules build their
problems with `problem()`, so a hint is written once here; a rule passes its own hint only where
the place of the problem calls for a more precise one. The README tables are generated from here
(`python -m expctl.core.codes` prints them) and `tests/test_codes.py` checks that they match and that
no rule emits a code missing from the registry.

Codes are grouped by their first digit: E1xx reading a file (E199: the per-file cap), E2xx the
manifest schema, E3xx secrets, E4xx rules across fields and manifests, E5xx `expctl.toml`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from expctl.core.errors import Location, Problem

__all__ = ["CODES", "CONFIG_TABLE", "MANIFEST_TABLE", "Code", "hint", "markdown_table", "problem"]


@dataclass(frozen=True)
class Code:
    """One problem code: `title` is its README table row, `hint` the default advice, `anchor` the
    documentation that explains the rule (a path from the repository root, with its heading)."""

    code: str
    title: str
    hint: str
    anchor: str


_ERRORS = "README.md#manifest-error-codes"
_FIELDS = "README.md#manifest-reference"
_POLICY = "docs/security.md#secret-source-policy"
_CROSS = "docs/design.md#manifests"
_CONFIG = "README.md#configuration"
_KEY_REFERENCE = "{from_env: NAME} or {from_file: PATH}"

_ALL = (
    # --- reading a file ---------------------------------------------------------------------------
    Code("E100", "manifest directory or file cannot be read",
         "check that the path exists and can be read", _ERRORS),
    Code("E101", "YAML syntax error, or a value that cannot be read as its type", "fix the YAML syntax", _ERRORS),
    Code("E102", "duplicate key", "keep one of the two keys", _ERRORS),
    Code("E103", "YAML anchor or alias (refused before any expansion: no billion-laughs)",
         "write the value out in full", _ERRORS),
    Code("E104", "custom YAML tag", "remove the tag", _ERRORS),
    Code("E105", "nesting deeper than 64 levels", "flatten the structure", _ERRORS),
    Code("E106", "manifest is a symlink to a file outside the manifest directory",
         "copy the manifest into the directory so reviewers see what is applied", _ERRORS),
    Code("E107", "file over 1 MiB", "split it into several files", _ERRORS),
    Code("E108", "file is not UTF-8", "save the file as UTF-8", _ERRORS),
    Code("E109", "document is not a mapping", "start the document with 'apiVersion: expctl/v1'", _ERRORS),
    Code("E110", "a string contains a NUL character (PostgreSQL refuses it)", "remove the \\0 escape", _ERRORS),
    Code("E199", "more than 100 problems in one file: its first 100 (in file order) are shown, then this one "
         "line, at the first problem left out, says how many more there are (the count at the end covers all)",
         "only the first 100 problems of a file are listed: fix them and validate again", _ERRORS),
    # --- the manifest schema ----------------------------------------------------------------------
    Code("E201", "unknown field (incl. `api_key` inside `upstream`; `extra_headers`/`compression` under profile "
         "2026-05; `opencode_settings`/`openclaw_settings` under 2026-11, where `opencode_settings` moved to "
         "`metadata.opencode_settings`)",
         "remove the field or fix its spelling; `expctl schema` lists every field", _FIELDS),
    Code("E202", "missing required field", "add the field", _FIELDS),
    Code("E203", "value not among the allowed ones (status, provider, adapter, apiVersion, kind)",
         "use one of the allowed values", _FIELDS),
    Code("E204", 'wrong type (strict: `"1"` is not a weight)',
         "fix the value's type (quote strings, no quotes around numbers and booleans)", _FIELDS),
    Code("E205", "weight not a positive integer",
         "weights are positive integers; remove a variant instead of giving it weight 0", _FIELDS),
    Code("E206", "length or range out of bounds", "bring the value within the allowed range", _FIELDS),
    Code("E207", "`name` not `[a-z0-9-]+`, or `from_env` not a variable name",
         "names use only lowercase letters, digits and '-'", _FIELDS),
    Code("E209", "`base_url` not an absolute http(s) URL (or carries credentials)",
         "fix the value as the message says", _FIELDS),
    Code("E210", "`public_model_id` has an upper-case letter (the gateway lower-cases requested ids: unreachable)",
         "write the public model id in lower case", _FIELDS),
    Code("E211", "an integer in `upstream` or `metadata` beyond ±(2^53 - 1) (the gateway's JavaScript would round it)",
         "write the value as a string (quote it), or keep it within ±9007199254740991", _FIELDS),
    Code("E212", "`public_model_id` starts with a prefix the gateway reserves for its operator's own models "
         "(profile 2026-11: `kilo/`, `kilocode/`, `kilo-internal/`, in any case)",
         "choose another prefix, such as preview/", _FIELDS),
    Code("E213", "`metadata` under gateway profile 2026-05 (that gateway has no metadata column to read)",
         "remove metadata, or validate and apply with --gateway-profile 2026-11", _FIELDS),
    Code("E299", "other schema violation", "see `expctl schema`", _FIELDS),
    # --- secrets ----------------------------------------------------------------------------------
    Code("E301", "`api_key` is a literal value",
         f"remove the key from the file (rotate it if it was committed) and write api_key: {_KEY_REFERENCE}",
         _FIELDS),
    Code("E302", "`api_key` mapping without exactly one of `from_env` / `from_file`",
         f"write api_key: {_KEY_REFERENCE}", _FIELDS),
    Code("E303", "a string that looks like a live credential",
         f"never commit keys: reference them with {_KEY_REFERENCE}", _FIELDS),
    Code("E304", "`from_env` names expctl's, CI's or the platform's own credentials (`EXPCTL_*`, "
         "`BYOK_ENCRYPTION_KEY`, `DATABASE_URL`, `GITHUB_TOKEN`, `GH_TOKEN`, `ACTIONS_*`, "
         "`AWS_SECRET_ACCESS_KEY`, …; the list is under [Secrets](#manifest-reference))",
         "give the api key its own variable, e.g. {from_env: PARTNER_RC1_KEY}", _POLICY),
    Code("E305", "a `from_file` with `..` components",
         "use a path inside the repository or an absolute path such as /run/secrets/NAME", _POLICY),
    Code("E306", "a `from_file` outside the repository and the allowed roots (`/run/secrets`, "
         "`/var/run/secrets`, `expctl.toml` `file_roots`), or inside a forbidden place (`/proc`, `/sys`, "
         "`/dev`, `.expctl/`, credential files); fix: move the file below a root, or add its folder to "
         "`[secrets] file_roots`",
         "give the api key a file of its own below the repository, /run/secrets or a [secrets] file_roots "
         "folder of expctl.toml", _POLICY),
    Code("E307", "a credential header (`authorization`, `proxy-authorization`, `x-api-key`, `api-key`, `cookie`, "
         "in any case) in `upstream.extra_headers`: the upstream blob is stored in plain text",
         "remove the header: the gateway sends the variant's api_key, a secret reference, to the upstream",
         _FIELDS),
    Code("E308", "`upstream.compression.api_key` given (the gateway would store it in plain text)",
         "remove compression.api_key; never put credentials in the upstream", _FIELDS),
    # --- across fields and manifests --------------------------------------------------------------
    Code("E401", "duplicate `name` across manifests",
         "give each experiment its own name; the name is its identity", _CROSS),
    Code("E402", "duplicate variant label", "give each variant a unique label", _CROSS),
    Code("E403", "two manifests want active/paused on one `public_model_id`",
         "only one experiment per public_model_id can route: complete or draft the other one", _CROSS),
    Code("E404", "`renamed_from` names a label still in use, or two variants claim one old label",
         "drop renamed_from, or rename that other variant too", _CROSS),
    Code("E405", "active and archived",
         "set archived: false, or pause/complete the experiment before archiving it", _CROSS),
    # --- expctl.toml ------------------------------------------------------------------------------
    Code("E500", "the file cannot be read (a `--config` path that does not exist, a directory, not UTF-8, "
         "over 1 MiB)", "check the path given with --config or EXPCTL_CONFIG", _CONFIG),
    Code("E501", "TOML syntax error (at tomllib's line and column)",
         "fix the syntax (https://toml.io); strings need quotes", _CONFIG),
    Code("E502", "unknown key or table", "remove it", _CONFIG),
    Code("E503", "wrong type (e.g. `file_roots` not a list of strings)",
         "see README, Configuration, for the expected types", _CONFIG),
    Code("E504", "a `file_roots` entry that is empty, has `..`, or is, lies in or contains a forbidden place",
         "name a folder that holds only api key files, e.g. /etc/expctl/secrets or secrets", _CONFIG),
    Code("E505", "a `host_pins` key that is not `env:NAME` / `file:PATH`, an empty host list, or a bad host "
         "pattern", "write a host (api.example.com) or *.domain (*.example.com)", _CONFIG),
    Code("E506", "a bad `scope`, environment name or `manifest_dir`, or an environment's credential variable "
         "that a manifest could read", "see README, Configuration, Environments", _CONFIG),
)

CODES: Mapping[str, Code] = MappingProxyType({c.code: c for c in _ALL})

# The README's two tables: which codes each lists, and the heading of its second column.
MANIFEST_TABLE: tuple[tuple[str, ...], str] = (("E1", "E2", "E3", "E4"), "problem")
CONFIG_TABLE: tuple[tuple[str, ...], str] = (("E5",), "problem in `expctl.toml`")


def hint(code: str) -> str:
    """The default hint of `code` (KeyError for a code the registry does not know)."""
    return CODES[code].hint


def problem(code: str, location: Location, message: str, hint: str | None = None) -> Problem:
    """A located problem; without `hint`, the code's default hint from the registry."""
    return Problem(code, location, message, CODES[code].hint if hint is None else hint)


def markdown_table(prefixes: Iterable[str], heading: str = "problem") -> str:
    """The README table of every code starting with one of `prefixes`, in code order."""
    wanted = tuple(prefixes)
    rows = [f"| {c.code} | {c.title} |" for c in sorted(_ALL, key=lambda c: c.code) if c.code.startswith(wanted)]
    return "\n".join([f"| code | {heading} |", "|---|---|", *rows]) + "\n"


if __name__ == "__main__":  # `python -m expctl.core.codes`: the README tables, to paste after a change
    print(markdown_table(*MANIFEST_TABLE))
    print(markdown_table(*CONFIG_TABLE), end="")
