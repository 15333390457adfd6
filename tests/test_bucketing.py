"""Tests for expctl.core.bucketing against an independent re-implementation of the gateway's pick."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import struct
import uuid
from collections import Counter

import pytest

from expctl.core.bucketing import (
    Subject,
    WeightedVariant,
    bucket,
    choose_subject,
    parse_subject,
    pick_variant,
    shares,
)

EXP_ID = "11111111-1111-4111-8111-111111111111"


def reference_pick(experiment_id: str, variants: list[tuple[str, str, int]], kind: str, value: str) -> str:
    """Independent: struct-unpacked hash prefix and bisect over cumulative weights; returns a label."""
    ordered = sorted(variants)  # tuples sort by id first
    cumulative = list(itertools.accumulate(w for _, _, w in ordered))
    seed = ("model_exp_" + experiment_id + "_" + kind + "_" + value).encode()
    (prefix,) = struct.unpack(">I", hashlib.sha256(seed).digest()[:4])
    # bisect_right finds the first running sum strictly greater than the bucket.
    return ordered[bisect.bisect_right(cumulative, prefix % cumulative[-1])][1]


def test_bucket_fixed_vectors() -> None:
    # Hash prefixes computed with `printf %s SEED | sha256sum`, outside Python.
    assert bucket(EXP_ID, Subject("user", "42"), 2**32) == 0x829CB0B6
    assert bucket(EXP_ID, Subject("ip", "2001:db8::1"), 2**32) == 0xF4CB28A9
    assert bucket("exp-1", Subject("machine", "m-7"), 2**32) == 0x7B819ABB
    assert bucket(EXP_ID, Subject("user", "42"), 100) == 2191306934 % 100
    assert bucket("exp-1", Subject("machine", "m-7"), 7) == 2072091323 % 7


def test_bucket_rejects_non_positive_total() -> None:
    with pytest.raises(ValueError, match="positive"):
        bucket(EXP_ID, Subject("user", "1"), 0)


FIXED_VARIANTS = [
    ("b0000000-0000-4000-8000-000000000000", "treatment", 3),
    ("0a000000-0000-4000-8000-000000000000", "control", 1),
    ("f0000000-0000-4000-8000-000000000000", "holdout", 1),
]


@pytest.mark.parametrize("kind", ["user", "machine", "ip"])
def test_pick_matches_reference_on_fixed_vectors(kind: str) -> None:
    variants = [WeightedVariant(i, label, w) for i, label, w in FIXED_VARIANTS]
    for n in range(500):
        value = f"subject-{n}" if kind != "ip" else f"10.0.{n // 256}.{n % 256}"
        got = pick_variant(EXP_ID, variants, Subject(kind, value))
        assert got.label == reference_pick(EXP_ID, FIXED_VARIANTS, kind, value)


def test_ten_thousand_subjects_match_shares() -> None:
    variants = [WeightedVariant(i, label, w) for i, label, w in FIXED_VARIANTS]
    counts: Counter[str] = Counter()
    for n in range(10_000):
        subject = Subject("user", f"user-{n}")
        label = pick_variant(EXP_ID, variants, subject).label
        assert label == reference_pick(EXP_ID, FIXED_VARIANTS, "user", f"user-{n}")
        counts[label] += 1
    expected = shares({label: w for _, label, w in FIXED_VARIANTS})
    assert expected == {"treatment": 0.6, "control": 0.2, "holdout": 0.2}
    for label, share in expected.items():
        assert abs(counts[label] / 10_000 - share) < 0.02


def test_variants_walked_in_id_order_not_input_order() -> None:
    # Weight 1 vs 1: whichever id sorts first owns bucket 0.
    low, high = "00000000-0000-4000-8000-000000000001", "ffffffff-0000-4000-8000-000000000001"
    subject = next(
        Subject("user", str(n)) for n in itertools.count() if bucket(EXP_ID, Subject("user", str(n)), 2) == 0
    )
    a, b = WeightedVariant(low, "a", 1), WeightedVariant(high, "b", 1)
    assert pick_variant(EXP_ID, [a, b], subject) == a
    assert pick_variant(EXP_ID, [b, a], subject) == a


def test_id_text_order_matches_uuid_byte_order() -> None:
    # PostgreSQL orders uuid by its 16 bytes; lowercase canonical text sorts the same way.
    ids = [uuid.UUID(int=n * 0x0123456789ABCDEF0123456789ABCDEF % 2**128) for n in range(200)]
    by_bytes = sorted(ids, key=lambda u: u.bytes)
    by_text = sorted(ids, key=str)
    assert by_bytes == by_text


def test_mixed_case_ids_walk_in_uuid_order() -> None:
    # Plain text order would put "B..." before "a..."; uuid (byte) order puts a0 before b0.
    first = WeightedVariant("a0000000-0000-4000-8000-000000000000", "first", 1)
    second = WeightedVariant("B0000000-0000-4000-8000-000000000000", "second", 1)
    subject = next(
        Subject("user", str(n)) for n in itertools.count() if bucket(EXP_ID, Subject("user", str(n)), 2) == 0
    )
    assert pick_variant(EXP_ID, [second, first], subject) == first


def test_pick_variant_errors() -> None:
    with pytest.raises(ValueError, match="no variants"):
        pick_variant(EXP_ID, [], Subject("user", "1"))
    with pytest.raises(ValueError, match="positive"):
        pick_variant(EXP_ID, [WeightedVariant("a", "x", 0)], Subject("user", "1"))


def test_single_variant_always_wins() -> None:
    only = WeightedVariant(EXP_ID, "only", 5)
    assert all(pick_variant(EXP_ID, [only], Subject("ip", f"1.2.3.{n}")) == only for n in range(50))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user:42", Subject("user", "42")),
        ("machine:abc-def", Subject("machine", "abc-def")),
        ("ip:10.0.0.1", Subject("ip", "10.0.0.1")),
        ("ip:2001:db8::1", Subject("ip", "2001:db8::1")),
        ("ip:::1", Subject("ip", "::1")),
        ("user:a:b", Subject("user", "a:b")),
    ],
)
def test_parse_subject(text: str, expected: Subject) -> None:
    assert parse_subject(text) == expected
    assert str(parse_subject(text)) == text


@pytest.mark.parametrize("text", ["", "user", "user:", "42", "email:a@b", "User:42", ":42"])
def test_parse_subject_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"user:ID, machine:ID or ip:ADDR"):
        parse_subject(text)


def test_subject_validates_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        Subject("email", "x")


def test_choose_subject_preference() -> None:
    assert choose_subject("u", "m", "1.1.1.1") == Subject("user", "u")
    assert choose_subject(None, "m", "1.1.1.1") == Subject("machine", "m")
    assert choose_subject(None, None, "1.1.1.1") == Subject("ip", "1.1.1.1")
    assert choose_subject("", "m", None) == Subject("machine", "m")
    with pytest.raises(ValueError, match="no subject"):
        choose_subject(None, None, None)


def test_shares() -> None:
    assert shares({"a": 1, "b": 2}) == {"a": 0.3333, "b": 0.6667}
    assert shares({"only": 7}) == {"only": 1.0}
    assert list(shares({"z": 1, "a": 1})) == ["z", "a"]
    with pytest.raises(ValueError):
        shares({})
    with pytest.raises(ValueError):
        shares({"a": 0})
