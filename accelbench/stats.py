"""Statistics on measurements: percentiles, latency summaries, confidence intervals (numpy only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# The percentiles every latency summary carries, as (key, q in percent).
SUMMARY_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


def _as_values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty; give at least one measurement")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity; drop failed measurements first")
    return array


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (q in 0..100), interpolating linearly between order statistics.

    This is numpy's default ("linear", Hyndman & Fan type 7, the same as Excel's PERCENTILE.INC).
    It can differ from the nearest-rank percentiles MLPerf LoadGen reports, so a scenario's record
    carries LoadGen's own numbers and uses this only for what LoadGen does not report.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    return float(np.percentile(_as_values(values), q))


def summarize_latencies(values_ms: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """count, mean, min, max, sample stdev (ddof=1) and p50/p90/p95/p99/p999 of latencies.

    An empty input gives count 0 and None elsewhere, so a run without raw latencies still has a
    summary of the same shape. stdev is 0.0 for a single value.
    """
    array = np.asarray(values_ms, dtype=np.float64).reshape(-1)
    keys = ["mean", "min", "max", "stdev", *(key for key, _ in SUMMARY_PERCENTILES)]
    if array.size == 0:
        return {"count": 0, **dict.fromkeys(keys)}
    array = _as_values(array, "values_ms")
    summary: dict[str, Any] = {
        "count": int(array.size),
        "mean": float(array.mean()),
        "min": float(array.min()),
        "max": float(array.max()),
        "stdev": float(array.std(ddof=1)) if array.size > 1 else 0.0,
    }
    quantiles = np.percentile(array, [q for _, q in SUMMARY_PERCENTILES])
    for (key, _), value in zip(SUMMARY_PERCENTILES, quantiles, strict=True):
        summary[key] = float(value)
    return summary


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.median,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval (low, high) for statistic(values).

    Resamples the values with replacement n_resamples times; the interval is the
    ((1 - confidence) / 2, (1 + confidence) / 2) quantiles of the resampled statistic. The default
    seed makes the interval reproducible; pass seed=None for a fresh one.
    """
    array = _as_values(values)
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    estimates = np.empty(n_resamples, dtype=np.float64)
    # Draw indices in blocks so memory stays bounded for long latency series.
    block = max(1, min(n_resamples, 2_000_000 // array.size))
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        indices = rng.integers(0, array.size, size=(stop - start, array.size))
        for row, resample in enumerate(array[indices]):
            estimates[start + row] = statistic(resample)
    alpha = 1.0 - confidence
    low, high = np.quantile(estimates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def median_ci(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free confidence interval (low, high) for the median, from order statistics.

    The number of values below the true median is Binomial(n, 1/2), so [x_(l), x_(n+1-l)] covers
    it with probability 1 - 2 * P(B <= l - 1); l is the largest rank whose coverage is still at
    least `confidence` (so the interval is conservative, as in the textbook tables).
    """
    array = np.sort(_as_values(values))
    _check_confidence(confidence)
    n = array.size
    cdf = _binomial_half_cdf(n)
    alpha = 1.0 - confidence
    # cdf[k] = P(B <= k); rank l (1-based) is allowed when P(B <= l - 1) <= alpha / 2.
    allowed = np.nonzero(cdf[: (n + 1) // 2] <= alpha / 2.0)[0]
    if allowed.size == 0:
        minimum = int(np.ceil(np.log2(2.0 / alpha)))
        raise ValueError(
            f"a {confidence:.0%} confidence interval for the median needs at least {minimum} "
            f"values, got {n}"
        )
    low_rank = int(allowed[-1]) + 1
    return float(array[low_rank - 1]), float(array[n - low_rank])


def _binomial_half_cdf(n: int) -> np.ndarray:
    """P(B <= k) for k = 0..n with B ~ Binomial(n, 1/2), computed in log space to stay exact."""
    k = np.arange(n, dtype=np.float64)
    # log C(n, k+1) - log C(n, k) = log((n - k) / (k + 1)), so the log pmf is a cumulative sum.
    log_pmf = np.concatenate(([0.0], np.cumsum(np.log((n - k) / (k + 1.0))))) - n * np.log(2.0)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
