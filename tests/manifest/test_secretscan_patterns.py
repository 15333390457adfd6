"""The key shapes added in issue 13 (hex secrets, more provider prefixes, JWTs): found in any string
of a manifest as E303 at the right place, named but never echoed; their near misses stay clean;
the whole-file pre-check still agrees with scanning every string; and no input makes them slow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expctl.core.manifest.secretscan import (
    _ANY_KNOWN_KEY,
    _TOKEN_SPLIT,
    KNOWN_KEY_PATTERNS,
    MIN_KEY_LENGTH,
    MIN_TOKEN_LENGTH,
    _looks_high_entropy,
    find_key_like,
    text_may_hold_keys,
)
from expctl.core.render.problems import PROBLEM_RENDERERS

from .helpers import BASE, edit, load_one, unmark
from .keys import ALNUM, HEX, URLSAFE, _chars, _mixed


def _jwt(rng: random.Random) -> str:
    def part(record: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(record).encode()).decode().rstrip("=")

    claims = {"sub": _chars(rng, string.digits, 10), "iat": rng.randrange(10**9, 2 * 10**9)}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{_mixed(rng, URLSAFE, 43)}"


# kind the detector names -> a generator of fake keys in the provider's shape.
NEW_KEYS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "pplx-": ("Perplexity key", lambda r: "pplx-" + _chars(r, HEX, 48)),
    "64 hex": ("64-hex secret", lambda r: _chars(r, HEX, 64)),
    "Bearer hex": ("bearer token", lambda r: "Bearer " + _chars(r, HEX, r.choice([32, 40, 48]))),
    "gsk_": ("Groq key", lambda r: "gsk_" + _mixed(r, ALNUM, 52)),
    "xai-": ("xAI key", lambda r: "xai-" + _mixed(r, ALNUM, 80)),
    "r8_": ("Replicate token", lambda r: "r8_" + _mixed(r, ALNUM, 37)),
    "sk_live_": ("Stripe secret key", lambda r: "sk_live_" + _mixed(r, ALNUM, 99)),
    "rk_test_": ("Stripe secret key", lambda r: "rk_test_" + _mixed(r, ALNUM, 24)),
    "ya29.": ("Google OAuth token", lambda r: "ya29." + _mixed(r, URLSAFE, 120)),
    "eyJ": ("JSON Web Token", _jwt),
    "dapi": ("Databricks token", lambda r: "dapi" + _chars(r, HEX, 32)),
    "nvapi-": ("NVIDIA key", lambda r: "nvapi-" + _mixed(r, URLSAFE, 64)),
    "fw_": ("Fireworks key", lambda r: "fw_" + _mixed(r, ALNUM, 24)),
}

UPSTREAM = "      base_url: https://partner.example.com/v1\n    api_key: {from_env: PARTNER_RC1_KEY}"
PLACES = {
    "description": edit(BASE, "description: Compare two checkpoints", "description: «'token {key} (temporary)'"),
    "extra_body flow": edit(BASE, UPSTREAM, UPSTREAM.replace(
        "\n    api_key", "\n      extra_body: {headers: {Authorization: «'{key}'}}\n    api_key")),
    "extra_body block": edit(BASE, UPSTREAM, UPSTREAM.replace(
        "\n    api_key", "\n      extra_body:\n        auth:\n          - x\n          - «{key}\n    api_key")),
}


@pytest.mark.parametrize("shape", sorted(NEW_KEYS))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_new_key_shape_is_e303_where_it_stands(tmp_path: Path, place: str, shape: str) -> None:
    kind, make = NEW_KEYS[shape]
    key = make(random.Random(shape))
    source, where = unmark(PLACES[place].replace("{key}", key))
    result = load_one(tmp_path, source)
    assert [(p.code, p.location.line, p.location.col) for p in result.problems] == [("E303", *where)]
    assert result.problems[0].message == f"this value looks like a live credential ({kind})"
    value = key.removeprefix("Bearer ")
    for fmt, render in PROBLEM_RENDERERS.items():
        output = render(result.problems, 1, 0)
        assert value not in output and value[:16] not in output, fmt


@pytest.mark.parametrize("shape", sorted(NEW_KEYS))
def test_new_key_shape_is_found_embedded(shape: str) -> None:
    kind, make = NEW_KEYS[shape]
    rng = random.Random(f"embedded-{shape}")
    for _ in range(50):
        key = make(rng)
        for text in (key, f"use {key} here", f'{{"token": "{key}"}}', f"https://h.example.com/v1?t={key}&x=1"):
            assert find_key_like(text) == kind, text


def test_a_sha256_digest_is_flagged_as_a_hex_secret() -> None:
    """The price of catching bare 64-hex keys (Together and others): a digest looks the same."""
    digest = hashlib.sha256(b"model weights").hexdigest()
    assert find_key_like(digest) == "64-hex secret"
    assert find_key_like("sha256:" + digest) == "64-hex secret"
    assert find_key_like(digest.upper()) == "64-hex secret"


@pytest.mark.parametrize("value", [
    hashlib.sha256(b"x").hexdigest()[:63], hashlib.sha256(b"x").hexdigest() + "a",  # 63 and 65 hex
    hashlib.sha512(b"x").hexdigest(), hashlib.sha1(b"x").hexdigest(), hashlib.md5(b"x").hexdigest(),
    "0f8fad5b-d9cb-469f-a165-70867728950e", "bearer token rotation", "Bearer " + "a" * 31,
    "Bearer " + "0123456789abcdef" * 2 + "g", "xai-grok-2-vision-1212", "x-ai/grok-2-latest",
    "fw_version_2024", "gsk_test", "r8_cache", "ya29", "eyJhbGciOiJIUzI1NiJ9", "eyJ.eyJ.sig",
    "accounts/fireworks/models/llama-v3p1-405b-instruct", "dapi-gateway-eu", "nvapi-preview",
    "pplx-70b-online", "sk_live_test", "pplx-" + "a" * 8,
])
def test_near_misses_are_not_flagged(value: str) -> None:
    assert find_key_like(value) is None


def test_no_pattern_is_shorter_than_the_length_skipped() -> None:
    for kind, pattern in KNOWN_KEY_PATTERNS:
        shortest = re._parser.parse(pattern.pattern).getwidth()[0]  # type: ignore[attr-defined]
        assert shortest >= MIN_KEY_LENGTH, kind


def _scanned_string_by_string(text: str) -> bool:
    return "\\" in text or _ANY_KNOWN_KEY.search(text) is not None or any(
        len(token) >= MIN_TOKEN_LENGTH and _looks_high_entropy(token) for token in _TOKEN_SPLIT.split(text))


SAMPLES = [make(random.Random(shape)) for shape, (_, make) in NEW_KEYS.items()]
PIECES = st.one_of(
    st.text(alphabet=HEX, max_size=70),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=_-.", max_size=40),
    st.text(alphabet=" :\n\"'.,#{}[]\t", min_size=1, max_size=3),
    st.sampled_from([*SAMPLES, "Bearer ", "bearer", "eyJ", ".", "pplx-", "gsk_", "dapi", "fw_", "ya29."]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join))
def test_precheck_agrees_with_the_new_patterns(text: str) -> None:
    assert text_may_hold_keys(text) == _scanned_string_by_string(text)


@pytest.mark.parametrize("text", [
    "eyJ-" * 200_000, "eyJaaaaaaaaaaaa.eyJbbbbbbbbbbbb-" * 25_000, "Bearer " * 100_000 + "a" * 31,
    ("Bearer " + "a" * 31 + "g ") * 20_000, ("a" * 63 + "-") * 12_000, "f" * 800_000, "fw_" * 300_000,
], ids=["eyJ-run", "two-segment-jwts", "bearers", "bearer-near-hex", "hex-63", "hex-run", "fw_-run"])
def test_adversarial_strings_are_scanned_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    find_key_like(text)
    text_may_hold_keys(text)
    assert time.perf_counter() - started < 5.0  # about 0.5 s each: a guard against quadratic regexes
