"""The SRM statistic and p-value against scipy's, an independent implementation (test-only dependency)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from expctl.core.stats import chi_square_sf, goodness_of_fit

SPLITS = [
    ([500, 500], [1, 1]),
    ([5_120, 4_880], [1, 1]),
    ([292, 206], [1, 1]),  # the planted mismatch of tests/traffic.py
    ([202, 93, 105], [2, 1, 1]),
    ([9_000, 1_100], [9, 1]),
    ([30, 10, 12, 25, 40], [1, 1, 1, 1, 1]),
    ([1_000_000, 990_000, 1_020_000, 1_003_000], [1, 1, 1, 1]),
    ([7, 3], [1, 1]),
]


@pytest.mark.parametrize(("observed", "weights"), SPLITS)
def test_goodness_of_fit_matches_scipy(observed: list[int], weights: list[int]) -> None:
    total, weight_sum = sum(observed), sum(weights)
    expected = [total * w / weight_sum for w in weights]
    reference = stats.chisquare(observed, expected)
    ours = goodness_of_fit(observed, weights)
    assert ours.df == len(observed) - 1
    assert ours.statistic == pytest.approx(float(reference.statistic), rel=1e-12)
    assert ours.p_value == pytest.approx(float(reference.pvalue), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 31])
@pytest.mark.parametrize("statistic", [1e-6, 0.3, 1.0, 4.2, 11.0, 40.0, 150.0, 700.0])
def test_survival_function_matches_scipy(statistic: float, df: int) -> None:
    reference = float(stats.chi2.sf(statistic, df))
    ours = chi_square_sf(statistic, df)
    if reference == 0.0:
        assert ours < 1e-300
    else:
        assert ours == pytest.approx(reference, rel=1e-9)
        assert math.log(ours) == pytest.approx(math.log(reference), rel=1e-9)


def test_edges() -> None:
    assert chi_square_sf(0.0, 1) == 1.0
    assert chi_square_sf(1e6, 3) == 0.0
    with pytest.raises(ValueError, match="at least 1"):
        chi_square_sf(1.0, 0)
    with pytest.raises(ValueError, match="at least two"):
        goodness_of_fit([10], [1])
    with pytest.raises(ValueError, match="positive"):
        goodness_of_fit([0, 0], [1, 1])
    assert goodness_of_fit([50, 50], [1, 1]).p_value == 1.0
