"""Detects strings that look like live credentials, so they never get committed in a manifest.

Two signals: well-known key prefixes (OpenAI, Anthropic, OpenRouter, Google, GitHub, Slack, AWS,
Hugging Face, GitLab) and long high-entropy tokens. Hex strings (commit ids, digests) and UUIDs stay
below the entropy bar on purpose: they are common in manifests and never keys on their own.
"""

from __future__ import annotations

import math
import re
from collections import Counter

KNOWN_KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Anthropic key", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")),
    ("OpenRouter key", re.compile(r"sk-or-[A-Za-z0-9_-]{16,}")),
    ("OpenAI-style key", re.compile(r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(r"AIza[0-9A-Za-z_-]{30,}")),
    ("GitHub token", re.compile(r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}")),
    ("Slack token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}")),
    ("AWS access key id", re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}")),
    ("Hugging Face token", re.compile(r"hf_[A-Za-z0-9]{30,}")),
    ("GitLab token", re.compile(r"glpat-[A-Za-z0-9_-]{20,}")),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)

_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9+/=_\-]+")
MIN_TOKEN_LENGTH = 32
MIN_ENTROPY_BITS = 4.2


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _looks_high_entropy(token: str) -> bool:
    if len(token) < MIN_TOKEN_LENGTH:
        return False
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    # Mixed case plus digits is what generated keys look like; words joined by dashes are not.
    if not (has_digit and has_upper and has_lower):
        return False
    return shannon_entropy(token) >= MIN_ENTROPY_BITS


def find_key_like(text: str) -> str | None:
    """Names the kind of credential `text` seems to contain, or None. Never returns the text."""
    for kind, pattern in KNOWN_KEY_PATTERNS:
        if pattern.search(text):
            return kind
    if len(text) < MIN_TOKEN_LENGTH:
        return None
    for token in _TOKEN_SPLIT.split(text):
        if _looks_high_entropy(token):
            return "high-entropy token"
    return None
