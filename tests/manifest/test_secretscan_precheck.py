"""The whole-file pre-check never says "no keys here" about text that holds one."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from expctl.core.manifest.secretscan import (
    _ANY_KNOWN_KEY,
    _TOKEN_SPLIT,
    MIN_TOKEN_LENGTH,
    _looks_high_entropy,
    text_may_hold_keys,
)

TOKEN = string.ascii_letters + string.digits + "+/=_-"
pieces = st.one_of(
    st.text(alphabet=TOKEN, max_size=60),
    st.text(alphabet=" :\n\"'.,#{}[]é\u2028\U0001f600", min_size=1, max_size=3),
    st.sampled_from(["sk-ant-" + "a1B2" * 5, "AKIA" + "A" * 16, "ghp_" + "x" * 36]),
)


def _every_token_scanned(text: str) -> bool:
    return "\\" in text or _ANY_KNOWN_KEY.search(text) is not None or any(
        len(token) >= MIN_TOKEN_LENGTH and _looks_high_entropy(token) for token in _TOKEN_SPLIT.split(text))


@settings(max_examples=500, deadline=None)
@given(st.lists(pieces, max_size=12).map("".join))
def test_precheck_agrees_with_scanning_every_token(text: str) -> None:
    assert text_may_hold_keys(text) == _every_token_scanned(text)


def test_precheck_finds_a_long_token_beside_other_characters() -> None:
    key = "Zx9Qp2Lm7Rt4Vb8Nc1Kd6Hf3Gj5Ws0Ye"
    assert text_may_hold_keys(f"name: café\nnote: {key}\n")
    assert not text_may_hold_keys(f"note: {key[:20]} {key[20:]}\n")
