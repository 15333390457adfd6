"""Detects strings that look like live credentials, so they never get committed in a manifest.

Two signals: well-known key prefixes (OpenAI, Anthropic, OpenRouter, Google, GitHub, Slack, AWS,
Hugging Face, GitLab) at the start of a word, and long high-entropy tokens whose letters and digits
change case/class as often as random text does. Hex strings (commit ids, digests) and UUIDs are never
mixed-case, and model ids built from words ("Meta-Llama-3.1-405B-Instruct") change class too rarely:
both are common in manifests and never keys on their own.
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

KNOWN_KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Anthropic key", re.compile(_START + r"sk-ant-[A-Za-z0-9_-]{16,}")),
    ("OpenRouter key", re.compile(_START + r"sk-or-[A-Za-z0-9_-]{16,}")),
    ("OpenAI-style key", re.compile(_START + r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(_START + r"AIza[0-9A-Za-z_-]{30,}")),
    ("GitHub token", re.compile(_START + r"(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(_START + r"xox[abposr]-[A-Za-z0-9-]{10,}")),
    ("AWS access key id", re.compile(_START + r"(?:AKIA|ASIA)[0-9A-Z]{16}" + _END)),
    ("Hugging Face token", re.compile(_START + r"hf_[A-Za-z0-9]{30,}")),
    ("GitLab token", re.compile(_START + r"glpat-[A-Za-z0-9_-]{20,}")),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)

# One pass over the text for all prefixes; the per-kind patterns only name what was found.
_ANY_KNOWN_KEY = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in KNOWN_KEY_PATTERNS))
# The literal starts of the patterns above: a plain alternation the regex engine scans quickly,
# checked before the full patterns (whose look-behinds make a whole-file search slow).
_KNOWN_KEY_HINT = re.compile(r"sk-|AIza|gh[pousr]_|github_pat_|xox[abposr]-|AKIA|ASIA|hf_|glpat-|PRIVATE KEY")

_TOKEN_CHARACTERS = string.ascii_letters + string.digits + "+/=_-"
_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9+/=_\-]+")
MIN_TOKEN_LENGTH = 32
# Every ASCII character as "a" if it can be part of a token, else as a space (other characters
# stay as they are, and are not "a"): a long token shows as a long run of "a".
_TOKEN_RUNS = str.maketrans({chr(i): "a" if chr(i) in _TOKEN_CHARACTERS else " " for i in range(128)})
_LONG_RUN = "a" * MIN_TOKEN_LENGTH
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


def _has_known_key(text: str) -> bool:
    return _KNOWN_KEY_HINT.search(text) is not None and _ANY_KNOWN_KEY.search(text) is not None


def find_key_like(text: str) -> str | None:
    """Names the kind of credential `text` seems to contain, or None. Never returns the text."""
    if _has_known_key(text):
        for kind, pattern in KNOWN_KEY_PATTERNS:
            if pattern.search(text):
                return kind
    if len(text) < MIN_TOKEN_LENGTH:
        return None
    for token in _TOKEN_SPLIT.split(text):
        if _looks_high_entropy(token):
            return "high-entropy token"
    return None


def text_may_hold_keys(text: str) -> bool:
    """A whole-file pre-check: False only when no string of the file can be key-like.

    Every YAML string is a substring of the text up to quoting and folding, which only introduce
    separators, except for backslash escapes in double-quoted strings: a file with a backslash is
    always scanned string by string.
    """
    if "\\" in text or _has_known_key(text):
        return True
    # Most files have no long run of token characters at all; one C pass over the text says so.
    if _LONG_RUN not in text.translate(_TOKEN_RUNS):
        return False
    return any(len(token) >= MIN_TOKEN_LENGTH and _looks_high_entropy(token) for token in _TOKEN_SPLIT.split(text))
