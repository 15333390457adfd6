"""Fake credentials in the shapes real providers issue, for the key-detector tests.

None of these is a real key: they are random characters behind real prefixes. The generators take a
`random.Random` so that every run sees the same values.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random text that, like any real random key, holds an uppercase letter, a lowercase one and a digit."""
    while True:
        text = _chars(rng, alphabet, n)
        if any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text):
            return text


# kind name (as the detector reports it) -> generator; keyed by the prefix the brief lists.
FAKE_KEYS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "sk-": ("OpenAI-style key", lambda r: "sk-" + _mixed(r, ALNUM, 48)),
    "sk-proj-": ("OpenAI-style key", lambda r: "sk-proj-" + _mixed(r, URLSAFE, 156)),
    "sk-ant-": ("Anthropic key", lambda r: "sk-ant-api03-" + _mixed(r, URLSAFE, 93) + "AA"),
    "sk-or-": ("OpenRouter key", lambda r: "sk-or-v1-" + _chars(r, HEX, 64)),
    "AIza": ("Google API key", lambda r: "AIza" + _mixed(r, URLSAFE, 35)),
    "ghp_": ("GitHub token", lambda r: "ghp_" + _mixed(r, ALNUM, 36)),
    "xoxb-": ("Slack token", lambda r: f"xoxb-{_chars(r, string.digits, 12)}-{_chars(r, string.digits, 13)}-"
              + _mixed(r, ALNUM, 24)),
    "AKIA": ("AWS access key id", lambda r: "AKIA" + _chars(r, string.ascii_uppercase + string.digits, 16)),
    "hf_": ("Hugging Face token", lambda r: "hf_" + _mixed(r, ALNUM, 34)),
    "glpat-": ("GitLab token", lambda r: "glpat-" + _mixed(r, URLSAFE, 20)),
    "high-entropy": ("high-entropy token", lambda r: _mixed(r, ALNUM, 40)),
}


def fake_key(prefix: str, rng: random.Random) -> str:
    return FAKE_KEYS[prefix][1](rng)


def kind_of(prefix: str) -> str:
    return FAKE_KEYS[prefix][0]


# Ways a key ends up inside a longer string.
EMBEDDINGS: dict[str, Callable[[str], str]] = {
    "bare": lambda k: k,
    "bearer": lambda k: f"Bearer {k}",
    "query": lambda k: f"https://api.example.com/v1?key={k}&x=1",
    "sentence": lambda k: f"temporary token {k} (remove before merge)",
    "assignment": lambda k: f"API_KEY={k}",
    "quoted-json": lambda k: f'{{"api_key": "{k}"}}',
}
