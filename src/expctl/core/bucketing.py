"""The gateway's deterministic variant pick (docs/design.md#variant-pick), for `expctl simulate` and
plan shares.

Pure and stdlib-only (part of the core layer): the same subject always lands in the same variant
as long as the experiment id, the variant ids and the weights are unchanged.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "SUBJECT_KINDS",
    "Subject",
    "WeightedVariant",
    "bucket",
    "choose_subject",
    "parse_subject",
    "pick_variant",
    "shares",
]

# In the gateway's order of preference.
SUBJECT_KINDS = ("user", "machine", "ip")


@dataclass(frozen=True)
class Subject:
    """Who a request is bucketed by: a user id, else a machine id, else a client IP."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in SUBJECT_KINDS:
            raise ValueError(f"subject kind must be one of {', '.join(SUBJECT_KINDS)}, got {self.kind!r}")
        if not self.value:
            raise ValueError(f"subject {self.kind!r} needs a non-empty value")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class WeightedVariant:
    """A variant as the pick sees it: its row id (uuid text), its label and its weight."""

    id: str
    label: str
    weight: int


def parse_subject(text: str) -> Subject:
    """Parse `user:ID`, `machine:ID` or `ip:ADDR`; only the first colon separates (IPv6 has more)."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in SUBJECT_KINDS or not value:
        raise ValueError(
            f"invalid subject {text!r}: expected user:ID, machine:ID or ip:ADDR (e.g. user:42, ip:10.0.0.1)"
        )
    return Subject(kind, value)


def choose_subject(user: str | None, machine: str | None, ip: str | None) -> Subject:
    """The gateway's preference: user, else machine, else ip. Empty strings count as absent."""
    for kind, value in zip(SUBJECT_KINDS, (user, machine, ip), strict=True):
        if value:
            return Subject(kind, value)
    raise ValueError("no subject: give a user id, a machine id or an ip")


def bucket(experiment_id: str, subject: Subject, total_weight: int) -> int:
    """First 4 bytes of SHA-256 of the seed, big-endian unsigned, modulo the total weight."""
    if total_weight <= 0:
        raise ValueError(f"total weight must be positive, got {total_weight}")
    seed = f"model_exp_{experiment_id}_{subject.kind}_{subject.value}"
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % total_weight


def pick_variant(
    experiment_id: str, variants: Sequence[WeightedVariant], subject: Subject
) -> WeightedVariant:
    """The variant the gateway routes `subject` to in experiment `experiment_id`."""
    if not variants:
        raise ValueError("cannot pick a variant: the experiment has no variants")
    bad = [v.label for v in variants if v.weight <= 0]
    if bad:
        # The database forbids weight <= 0 (model_experiment_variant_weight_positive).
        raise ValueError(f"variant weights must be positive: {', '.join(sorted(bad))}")
    # The gateway orders by the uuid column. PostgreSQL compares uuids by their 16 bytes, which is
    # the same order as the canonical lowercase hex text, so plain string order on the lowercased
    # text reproduces it (lower() guards against ids spelled in upper or mixed case).
    ordered = sorted(variants, key=lambda v: v.id.lower())
    point = bucket(experiment_id, subject, sum(v.weight for v in ordered))
    running = 0
    for variant in ordered:
        running += variant.weight
        if point < running:
            return variant
    raise AssertionError("unreachable: bucket is always below the total weight")


def shares(weights: Mapping[str, int]) -> dict[str, float]:
    """Each label's expected fraction of traffic, rounded to 4 decimals, in the input order."""
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError("weights must be non-negative with a positive total")
    return {label: round(weight / total, 4) for label, weight in weights.items()}


class _Weighted(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def weight(self) -> int: ...


def variant_shares(variants: Sequence[_Weighted]) -> dict[str, float]:
    """Each variant's traffic share (a fresh dict: the computed one is cached and shared)."""
    return dict(_shares_of(tuple((v.label, v.weight) for v in variants))) if variants else {}


@functools.lru_cache(maxsize=1024)
def _shares_of(weights: tuple[tuple[str, int], ...]) -> dict[str, float]:
    """Shares per distinct set of labels and weights: thousands of experiments share a few."""
    return shares(dict(weights))
