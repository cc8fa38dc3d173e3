"""The comparison statistics in accelbench.stats against scipy and textbook values."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from accelbench.stats import (
    benjamini_hochberg,
    hodges_lehmann_ratio_ci,
    mann_whitney_u,
    mcnemar_exact,
)


@pytest.mark.parametrize("seed", range(5))
def test_mann_whitney_matches_scipy_asymptotic_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Rounding to 0.1 makes many ties, so the tie correction is exercised.
    a = np.round(rng.lognormal(0.0, 0.3, 80 + seed * 37), 1)
    b = np.round(rng.lognormal(0.04 * seed, 0.3, 60 + seed * 11), 1)
    u, p = mann_whitney_u(a, b)
    expected = scipy_stats.mannwhitneyu(a, b, method="asymptotic")
    assert u == expected.statistic
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_mann_whitney_textbook_and_degenerate_cases():
    # Fully separated samples of 5 and 5: U = 0 (a all below b) and the largest possible U
    # the other way; the asymptotic p with continuity correction is 2 * sf((12.5 - 0.5) / 4.787).
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0.0
    assert p == pytest.approx(scipy_stats.norm.sf(12.0 / np.sqrt(25 * 11 / 12)) * 2)
    assert mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])[0] == 25.0
    assert mann_whitney_u([3.0] * 10, [3.0] * 7) == (35.0, 1.0)


def test_hodges_lehmann_recovers_an_exact_ratio():
    rng = np.random.default_rng(0)
    base = rng.lognormal(0.0, 0.2, 300)
    estimate, low, high = hodges_lehmann_ratio_ci(base, base * 1.2)
    assert estimate == pytest.approx(1.2, rel=1e-12)
    assert low < 1.2 < high
    assert high / low < 1.1


def test_hodges_lehmann_interval_covers_the_true_ratio_about_95_percent():
    rng = np.random.default_rng(1)
    covered = 0
    trials = 300
    for _ in range(trials):
        base = rng.lognormal(0.0, 0.3, 40)
        new = rng.lognormal(np.log(1.1), 0.3, 50)
        _, low, high = hodges_lehmann_ratio_ci(base, new)
        covered += low <= 1.1 <= high
    assert 0.91 <= covered / trials <= 0.99


def test_hodges_lehmann_subsamples_long_series_fast_and_rejects_bad_values():
    rng = np.random.default_rng(2)
    base = rng.lognormal(0.0, 0.2, 50_000)
    estimate, low, high = hodges_lehmann_ratio_ci(base, rng.lognormal(np.log(0.8), 0.2, 60_000))
    assert low < 0.8 < high and estimate == pytest.approx(0.8, rel=0.02)
    with pytest.raises(ValueError, match="<= 0"):
        hodges_lehmann_ratio_ci([1.0, 0.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="needs more values"):
        hodges_lehmann_ratio_ci([1.0, 2.0], [1.5, 2.5])


def test_benjamini_hochberg_textbook_example():
    # Benjamini & Hochberg (1995), section 4.1: 15 p-values, q = 0.05 -> the 4 smallest rejected.
    p = [
        0.0001,
        0.0004,
        0.0019,
        0.0095,
        0.0201,
        0.0278,
        0.0298,
        0.0344,
        0.0459,
        0.3240,
        0.4262,
        0.5719,
        0.6528,
        0.7590,
        1.0000,
    ]
    order = np.random.default_rng(0).permutation(len(p))
    shuffled = [p[i] for i in order]
    rejected = benjamini_hochberg(shuffled, 0.05)
    assert sorted(pv for pv, r in zip(shuffled, rejected, strict=True) if r) == p[:4]
    # The step-up rule rejects a p above its own line when a larger one passes its line.
    assert benjamini_hochberg([0.04, 0.03], 0.05) == [True, True]
    assert benjamini_hochberg([], 0.05) == []
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([0.5, 1.5], 0.05)


@pytest.mark.parametrize(("b", "c"), [(3, 12), (0, 0), (10, 10), (0, 7), (25, 40), (400, 330)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_textbook_value_and_bad_counts():
    # b=3, c=12: 2 * P(X <= 3 | n=15, 1/2) = 2 * 576 / 32768 = 0.03515625.
    assert mcnemar_exact(3, 12) == pytest.approx(0.03515625)
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 3)
