"""Detects strings that look like live credentials, so they never get committed in a manifest.

Three signals: well-known key prefixes (OpenAI, Anthropic, OpenRouter, Google, GitHub, Slack, AWS,
Hugging Face, GitLab, Stripe, Perplexity, Groq, xAI, Replicate, Databricks, NVIDIA, Fireworks, JWTs)
at the start of a word; hex secrets (a bare 64-hex token, as Together and others issue, and a
`Bearer` header with 32+ hex digits); and long high-entropy tokens whose letters and digits change
case/class as often as random text does. Other hex strings (commit ids, shorter digests) and UUIDs
are never mixed-case, and model ids built from words ("Meta-Llama-3.1-405B-Instruct") change class
too rarely: both are common in manifests and never keys on their own. A sha256 digest is a 64-hex
token too, and is flagged: a manifest cannot tell it apart from a key, nor vouch for it.
"""

from __future__ import annotations

import itertools
import math
import re
import string
from collections import Counter

# A prefix only counts at the start of a word: "task-router-2024" holds "sk-" but is no key.
_START = r"(?<![A-Za-z0-9])"
_END = r"(?![A-Za-z0-9])"
# A JWT must start a run of its own alphabet: then a long "eyJ-eyJ-eyJ-..." without dots is one
# candidate start, not one per "eyJ" each rescanning the rest of the run (quadratic time).
_JWT_SEGMENT = r"[A-Za-z0-9_-]{10,}"
_JWT = r"(?<![A-Za-z0-9_-])eyJ" + _JWT_SEGMENT + r"\.eyJ" + _JWT_SEGMENT + r"\." + _JWT_SEGMENT

# Patterns that begin with a literal (`_KNOWN_KEY_HINT` lists those literals).
PREFIXED_KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Anthropic key", re.compile(_START + r"sk-ant-[A-Za-z0-9_-]{16,}")),
    ("OpenRouter key", re.compile(_START + r"sk-or-[A-Za-z0-9_-]{16,}")),
    ("OpenAI-style key", re.compile(_START + r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}")),
    ("Stripe secret key", re.compile(_START + r"[sr]k_(?:live|test)_[A-Za-z0-9]{24,}")),
    ("Google API key", re.compile(_START + r"AIza[0-9A-Za-z_-]{30,}")),
    ("Google OAuth token", re.compile(_START + r"ya29\.[0-9A-Za-z_-]{20,}")),
    ("GitHub token", re.compile(_START + r"(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(_START + r"xox[abposr]-[A-Za-z0-9-]{10,}")),
    ("AWS access key id", re.compile(_START + r"(?:AKIA|ASIA)[0-9A-Z]{16}" + _END)),
    ("Hugging Face token", re.compile(_START + r"hf_[A-Za-z0-9]{30,}")),
    ("GitLab token", re.compile(_START + r"glpat-[A-Za-z0-9_-]{20,}")),
    ("Perplexity key", re.compile(_START + r"pplx-[A-Za-z0-9]{32,}")),
    ("Groq key", re.compile(_START + r"gsk_[A-Za-z0-9]{40,}")),
    ("xAI key", re.compile(_START + r"xai-[A-Za-z0-9]{40,}")),
    ("Replicate token", re.compile(_START + r"r8_[A-Za-z0-9]{30,}")),
    ("Databricks token", re.compile(_START + r"dapi[0-9a-f]{32}")),
    ("NVIDIA key", re.compile(_START + r"nvapi-[A-Za-z0-9_-]{40,}")),
    ("Fireworks key", re.compile(_START + r"fw_[A-Za-z0-9]{20,}")),
    ("JSON Web Token", re.compile(_JWT)),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
# Hex secrets have no literal start; both hold a run of at least 32 hex digits. Checked after the
# prefixed ones, so "sk-or-v1-<64 hex>" is still named an OpenRouter key.
HEX_KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bearer token", re.compile(_START + r"[Bb]earer\s+[0-9a-fA-F]{32,}" + _END)),
    ("64-hex secret", re.compile(_START + r"[0-9a-fA-F]{64}" + _END)),
)
KNOWN_KEY_PATTERNS = PREFIXED_KEY_PATTERNS + HEX_KEY_PATTERNS
# No pattern matches fewer characters (the Slack one is the shortest): shorter strings are skipped.
MIN_KEY_LENGTH = 15


def _any_of(patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in patterns))


# One pass over the text for all patterns; the per-kind patterns only name what was found.
_ANY_KNOWN_KEY = _any_of(KNOWN_KEY_PATTERNS)
_ANY_PREFIXED_KEY = _any_of(PREFIXED_KEY_PATTERNS)
_ANY_HEX_KEY = _any_of(HEX_KEY_PATTERNS)
# The literal starts of the prefixed patterns, checked before the full patterns (whose look-behinds
# make a whole-file search slow): some as a plain alternation the regex engine scans quickly, the
# rest as substring searches (they start with common letters, which would make the alternation
# stop and try them at most positions of a file: 30 instead of 12 µs for a typical manifest).
_KNOWN_KEY_HINT = re.compile(r"sk-|AIza|gh[pousr]_|github_pat_|xox[abposr]-|AKIA|ASIA|hf_|glpat-|PRIVATE KEY")
_KNOWN_KEY_LITERALS = ("sk_live_", "rk_live_", "sk_test_", "rk_test_", "ya29.", "pplx-", "gsk_", "xai-", "r8_",
                       "dapi", "nvapi-", "fw_", "eyJ")

_TOKEN_CHARACTERS = string.ascii_letters + string.digits + "+/=_-"
_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9+/=_\-]+")
MIN_TOKEN_LENGTH = 32
# Every ASCII character as "a" if it can be part of a token, else as a space (other characters
# stay as they are, and are not "a"): a long token shows as a long run of "a".
_TOKEN_RUNS = str.maketrans({chr(i): "a" if chr(i) in _TOKEN_CHARACTERS else " " for i in range(128)})
_LONG_RUN = "a" * MIN_TOKEN_LENGTH
# The same for hex digits, as "h": a hex secret shows as a run of at least 32 "h".
_HEX_RUNS = str.maketrans({chr(i): "h" if chr(i) in string.hexdigits else " " for i in range(128)})
_LONG_HEX_RUN = "h" * 32
MIN_ENTROPY_BITS = 4.2
# Share of neighbouring letters/digits that switch class (upper, lower, digit). Random keys switch
# about 62% of the time; names built from words and numbers ("Mixtral-8x22B-Instruct-20240112",
# ".../deployments/GPT4o-Prod/chat/completions") stay under 30%.
MIN_CLASS_CHANGE_RATIO = 0.3


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _char_class(char: str) -> str | None:
    if char.isdigit():
        return "digit"
    if char.isupper():
        return "upper"
    if char.islower():
        return "lower"
    return None


def class_change_ratio(token: str) -> float:
    """How often adjacent letters/digits change class; separators ('-', '/', ...) are skipped over."""
    pairs = changes = 0
    for left, right in itertools.pairwise(token):
        a, b = _char_class(left), _char_class(right)
        if a is not None and b is not None:
            pairs += 1
            changes += a != b
    return changes / pairs if pairs else 0.0


def _looks_high_entropy(token: str) -> bool:
    if len(token) < MIN_TOKEN_LENGTH:
        return False
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    # Mixed case plus digits is what generated keys look like; words joined by dashes are not.
    if not (has_digit and has_upper and has_lower):
        return False
    return shannon_entropy(token) >= MIN_ENTROPY_BITS and class_change_ratio(token) >= MIN_CLASS_CHANGE_RATIO


def _has_prefixed_key(text: str) -> bool:
    hinted = _KNOWN_KEY_HINT.search(text) is not None or any(literal in text for literal in _KNOWN_KEY_LITERALS)
    return hinted and _ANY_PREFIXED_KEY.search(text) is not None


def _named(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str | None:
    for kind, pattern in patterns:
        if pattern.search(text):
            return kind
    return None


def find_key_like(text: str) -> str | None:
    """Names the kind of credential `text` seems to contain, or None. Never returns the text."""
    if len(text) < MIN_KEY_LENGTH:
        return None
    if _has_prefixed_key(text):
        return _named(PREFIXED_KEY_PATTERNS, text)
    if len(text) < MIN_TOKEN_LENGTH:
        return None
    if _LONG_HEX_RUN in text.translate(_HEX_RUNS) and (kind := _named(HEX_KEY_PATTERNS, text)) is not None:
        return kind
    for token in _TOKEN_SPLIT.split(text):
        if _looks_high_entropy(token):
            return "high-entropy token"
    return None


def text_may_hold_keys(text: str) -> bool:
    """A whole-file pre-check: False only when no string of the file can be key-like.

    Every YAML string is a substring of the text up to quoting and folding, which only introduce
    separators (and turn line breaks into the spaces a `Bearer` pattern accepts as well), except for
    backslash escapes in double-quoted strings: a file with a backslash is always scanned string by
    string.
    """
    if "\\" in text or _has_prefixed_key(text):
        return True
    # Most files have no long run of token characters at all; one C pass over the text says so.
    # (Hex digits are token characters: a hex secret needs such a run too.)
    if _LONG_RUN not in text.translate(_TOKEN_RUNS):
        return False
    if _LONG_HEX_RUN in text.translate(_HEX_RUNS) and _ANY_HEX_KEY.search(text) is not None:
        return True
    return any(len(token) >= MIN_TOKEN_LENGTH and _looks_high_entropy(token) for token in _TOKEN_SPLIT.split(text))
