"""accelbench.stats against textbook values, numpy and scipy."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from accelbench.stats import bootstrap_ci, median_ci, percentile, summarize_latencies


def test_percentile_matches_textbook_linear_interpolation():
    # Type-7 quantiles of 1..10: rank 1 + 0.9 * 9 = 9.1 -> 9.1; rank 1 + 0.5 * 9 = 5.5 -> 5.5.
    values = list(range(1, 11))
    assert percentile(values, 90) == pytest.approx(9.1)
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    rng = np.random.default_rng(3)
    sample = rng.lognormal(size=501)
    assert percentile(sample, 99.9) == pytest.approx(scipy_stats.scoreatpercentile(sample, 99.9))


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0, 2.0], 101)
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, float("nan")], 50)


def test_summarize_latencies_known_values():
    summary = summarize_latencies([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert summary["count"] == 8
    assert summary["mean"] == 5.0
    assert summary["min"] == 2.0 and summary["max"] == 9.0
    # Sample standard deviation (ddof=1) of this classic set: sqrt(32 / 7).
    assert summary["stdev"] == pytest.approx(np.sqrt(32 / 7))
    assert summary["p50"] == 4.5
    assert summary["p90"] == pytest.approx(np.percentile([2, 4, 4, 4, 5, 5, 7, 9], 90))
    assert set(summary) == {
        "count",
        "mean",
        "min",
        "max",
        "stdev",
        "p50",
        "p90",
        "p95",
        "p99",
        "p999",
    }


def test_summarize_latencies_empty_and_single():
    empty = summarize_latencies([])
    assert empty["count"] == 0 and empty["p99"] is None and empty["mean"] is None
    single = summarize_latencies([3.5])
    assert single["stdev"] == 0.0 and single["p999"] == 3.5


@pytest.mark.parametrize(
    ("n", "low_rank", "high_rank"),
    # Distribution-free 95% median intervals from the binomial tables (e.g. Conover,
    # Practical Nonparametric Statistics): n=10 -> (x2, x9), n=20 -> (x6, x15), n=100 -> (x40, x61).
    [(6, 1, 6), (10, 2, 9), (20, 6, 15), (100, 40, 61)],
)
def test_median_ci_matches_textbook_ranks(n, low_rank, high_rank):
    values = np.arange(1, n + 1, dtype=float) * 10.0
    rng = np.random.default_rng(n)
    low, high = median_ci(rng.permutation(values), confidence=0.95)
    assert (low, high) == (values[low_rank - 1], values[high_rank - 1])


def test_median_ci_coverage_agrees_with_scipy_binomial():
    n, confidence = 257, 0.99
    values = np.arange(n, dtype=float)
    low, high = median_ci(values, confidence=confidence)
    low_rank = int(low) + 1
    coverage = 1 - 2 * scipy_stats.binom.cdf(low_rank - 1, n, 0.5)
    # The interval reaches the confidence, and the next narrower one would not.
    assert coverage >= confidence
    assert 1 - 2 * scipy_stats.binom.cdf(low_rank, n, 0.5) < confidence
    assert high == n - low_rank


def test_median_ci_too_few_values():
    with pytest.raises(ValueError, match="at least 6 values"):
        median_ci([1.0, 2.0, 3.0, 4.0, 5.0])


def test_bootstrap_ci_agrees_with_scipy_and_theory():
    rng = np.random.default_rng(7)
    values = rng.normal(loc=10.0, scale=2.0, size=400)
    low, high = bootstrap_ci(values, np.mean, confidence=0.95, n_resamples=4000, seed=1)
    reference = scipy_stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=0.95,
        n_resamples=4000,
        method="percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.05)
    assert high == pytest.approx(reference.high, abs=0.05)
    # The normal-theory interval mean +- 1.96 s / sqrt(n) has nearly the same width.
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert low < values.mean() < high


def test_bootstrap_ci_is_reproducible_and_narrows_with_confidence():
    values = np.random.default_rng(0).exponential(size=200)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    low90, high90 = bootstrap_ci(values, np.median, confidence=0.90, seed=5)
    low99, high99 = bootstrap_ci(values, np.median, confidence=0.99, seed=5)
    assert low99 <= low90 < high90 <= high99
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(values, confidence=1.5)
