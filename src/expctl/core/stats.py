"""The sample ratio mismatch test: Pearson's chi-square goodness of fit and its p-value — pure core.

The p-value is the chi-square survival function for an integer number of degrees of freedom,
which has a closed form (Abramowitz & Stegun 26.4.4 and 26.4.5): a finite sum of Poisson terms
for even degrees of freedom, and `erfc` plus a finite sum for odd ones. The terms are summed in
log space so that large statistics underflow to 0 gracefully instead of overflowing; this keeps
scipy (tens of megabytes) out of the runtime. tests/test_stats.py checks it against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ChiSquare", "chi_square_sf", "goodness_of_fit"]


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's statistic of observed counts against the counts the weights predict."""

    statistic: float
    df: int
    p_value: float


def _log_sum_exp(logs: Sequence[float]) -> float:
    top = max(logs)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(value - top) for value in logs))


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square distributed with `df` (>= 1) degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if df % 2 == 0:
        # Q = exp(-x/2) * sum_{i < df/2} (x/2)^i / i!
        logs = [-half + i * math.log(half) - math.lgamma(i + 1) for i in range(df // 2)]
        return min(1.0, math.exp(_log_sum_exp(logs)))
    # Q = erfc(sqrt(x/2)) + exp(-x/2) * sum_{r = 1 .. (df-1)/2} (x/2)^(r - 1/2) / Gamma(r + 1/2)
    logs = [-half + (r - 0.5) * math.log(half) - math.lgamma(r + 0.5) for r in range(1, (df - 1) // 2 + 1)]
    tail = math.exp(_log_sum_exp(logs)) if logs else 0.0
    return min(1.0, math.erfc(math.sqrt(half)) + tail)


def goodness_of_fit(observed: Sequence[int], weights: Sequence[int]) -> ChiSquare:
    """The statistic of `observed` counts against shares proportional to `weights` (positive).

    Degrees of freedom are the number of categories minus one; at least two categories and one
    observation are needed.
    """
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("need the same number (at least two) of observed counts and weights")
    total, weight_sum = sum(observed), sum(weights)
    if total <= 0 or weight_sum <= 0 or any(w <= 0 for w in weights):
        raise ValueError("need a positive total and positive weights")
    expected = [total * w / weight_sum for w in weights]
    statistic = math.fsum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    df = len(observed) - 1
    return ChiSquare(statistic, df, chi_square_sf(statistic, df))
