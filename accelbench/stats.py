"""Statistics on measurements: percentiles, summaries, confidence intervals, significance tests."""

from __future__ import annotations

import bisect
import math
import statistics
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


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _normal_ppf(p: float) -> float:
    """The z with P(Z <= z) = p, by bisection on erfc (exact to ~1e-12, no scipy needed)."""
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if 1.0 - _normal_sf(mid) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # The tied group occupying ranks s+1..s+t gets the average s + (t + 1) / 2.
    group_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return group_rank[inverse], counts


def mann_whitney_u(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Mann–Whitney U statistic of a against b and its two-sided p-value.

    The p-value is the normal approximation with tie correction and continuity correction, the
    same as scipy's ``mannwhitneyu(a, b, method="asymptotic")``; it is what latency series of
    hundreds or thousands of queries need (the exact distribution is for tiny samples).
    """
    x = _as_values(a, "a")
    y = _as_values(b, "b")
    n1, n2 = x.size, y.size
    ranks, ties = _average_ranks(np.concatenate((x, y)))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    tie_term = float(((ties.astype(np.float64) ** 3) - ties).sum()) / (n * (n - 1))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0.0:  # every value is the same: no evidence of any difference
        return u1, 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return u1, float(min(1.0, 2.0 * _normal_sf(z)))


def hodges_lehmann_ratio_ci(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    max_values: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio new/base (estimate, low, high) from the Hodges–Lehmann shift of log values.

    The estimate is exp(median of all log(new_j) - log(base_i)); the interval is the Moses
    (Mann–Whitney inversion) interval on those differences, with the normal approximation for its
    ranks. A series longer than max_values is first subsampled without replacement (seeded), since
    the pairwise differences grow as the product of the lengths.
    """
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    logs = []
    for name, values in (("base", base), ("new", new)):
        array = _as_values(values, name)
        if np.any(array <= 0.0):
            raise ValueError(f"{name} has values <= 0; a ratio needs positive measurements")
        if array.size > max_values:
            array = rng.choice(array, size=max_values, replace=False)
        logs.append(np.log(array))
    log_base, log_new = logs
    m, n = log_base.size, log_new.size
    differences = (log_new[:, None] - log_base[None, :]).reshape(-1)
    total = differences.size
    z = _normal_ppf(1.0 - (1.0 - confidence) / 2.0)
    # Rank (1-based) of the lower bound: mn/2 - z * sd(U), the Moses interval.
    rank = int(np.floor(total / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0)))
    if rank < 1:
        raise ValueError(
            f"a {confidence:.0%} interval for the ratio needs more values, got {m} and {n}"
        )
    mid = [(total - 1) // 2, total // 2]
    picks = sorted({rank - 1, total - rank, *mid})
    ordered = np.partition(differences, picks)
    estimate = (ordered[mid[0]] + ordered[mid[1]]) / 2.0
    return (
        float(np.exp(estimate)),
        float(np.exp(ordered[rank - 1])),
        float(np.exp(ordered[total - rank])),
    )


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray, alpha: float) -> list[bool]:
    """Which hypotheses to reject so the false discovery rate stays at most alpha (BH 1995).

    Sorts the m p-values, finds the largest k with p_(k) <= k * alpha / m and rejects the k
    smallest. An empty list gives an empty list.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha}")
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return []
    if np.any(~np.isfinite(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("p-values must lie between 0 and 1")
    order = np.argsort(p, kind="stable")
    passing = np.nonzero(p[order] <= alpha * np.arange(1, p.size + 1) / p.size)[0]
    rejected = np.zeros(p.size, dtype=bool)
    if passing.size:
        rejected[order[: passing[-1] + 1]] = True
    return rejected.tolist()


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    Under the null each discordant pair is equally likely to go either way, so min(b, c) is
    Binomial(b + c, 1/2); the p-value doubles its tail (the distribution is symmetric), capped at 1.
    """
    if int(b) != b or int(c) != c or b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative integers, got {b} and {c}")
    b, c = int(b), int(c)
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * _binomial_half_cdf(b + c)[min(b, c)]))


def benchmark_stats(data_s: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """pytest-benchmark's statistics of raw timings in seconds, field for field (its 5.x schema).

    min, max, mean, stddev (sample, 0 for one value), median, q1 and q3 (Wikipedia's "method 2"
    for an even count, "method 3" for an odd one, as pytest-benchmark computes them), iqr,
    iqr_outliers (beyond 1.5 IQR of the quartiles), stddev_outliers (beyond one stddev of the
    mean), outliers ("stddev;iqr"), ld15iqr/hd15iqr (the lowest/highest datum within 1.5 IQR),
    ops (rounds / total), total and rounds. Written this way so a file accelbench writes reads
    the same in pytest-benchmark's own compare.
    """
    data = [float(x) for x in _as_values(data_s, "data_s")]
    ordered = sorted(data)
    n = len(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if n > 1 else 0.0
    if n == 1:
        q1 = q3 = ordered[0]
    elif n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            q1 = 0.25 * ordered[k - 1] + 0.75 * ordered[k]
            q3 = 0.75 * ordered[3 * k] + 0.25 * ordered[3 * k + 1]
        else:
            q1 = 0.75 * ordered[k] + 0.25 * ordered[k + 1]
            q3 = 0.25 * ordered[3 * k + 1] + 0.75 * ordered[3 * k + 2]
    else:
        q1 = statistics.median(ordered[: n // 2])
        q3 = statistics.median(ordered[n // 2 :])
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(x < low_fence or x > high_fence for x in data)
    stddev_outliers = sum(x < mean - stddev or x > mean + stddev for x in data)
    if n == 1:
        ld15iqr = hd15iqr = data[0]
    else:
        ld15iqr = ordered[bisect.bisect_left(ordered, low_fence)]
        # The highest datum at or below the fence: bisect_right lands just after it (never 0,
        # since Q3 >= the smallest datum). pytest-benchmark before 5.3.1 took the one after.
        hd15iqr = ordered[bisect.bisect_right(ordered, high_fence) - 1]
    total = sum(data)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(ordered),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": ld15iqr,
        "hd15iqr": hd15iqr,
        "ops": n / total if total else 0.0,
        "total": total,
    }


def _e_divisive_best(
    series: np.ndarray, exponent: float, min_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The largest Q(tau, kappa) of E-divisive, and its tau, for each row of `series` (R x n).

    Left segment [0, tau), right segment [tau, kappa), both at least min_size long. A 2-D prefix
    sum of the distance matrix makes each block sum O(1), so the whole grid costs O(R n^2).
    """
    rows, n = series.shape
    distances = np.abs(series[:, :, None] - series[:, None, :]) ** exponent
    prefix = np.zeros((rows, n + 1, n + 1))
    prefix[:, 1:, 1:] = distances.cumsum(axis=1).cumsum(axis=2)
    tau, kappa = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    m = tau.astype(np.float64)
    k = (kappa - tau).astype(np.float64)
    allowed = (m >= min_size) & (k >= min_size)
    m, k = np.where(allowed, m, 2.0), np.where(allowed, k, 2.0)  # placeholders, masked below
    diagonal = prefix[:, np.arange(n + 1), np.arange(n + 1)]
    left = diagonal[:, :, None]  # both orders of every pair left of tau
    between = prefix - left
    right = diagonal[:, None, :] - 2.0 * prefix + left
    e_hat = 2.0 * between / (m * k) - left / (m * (m - 1.0)) - right / (k * (k - 1.0))
    q = np.where(allowed, (m * k / (m + k)) * e_hat, -np.inf).reshape(rows, -1)
    best = q.argmax(axis=1)
    return q[np.arange(rows), best], best // (n + 1)


def e_divisive(
    values: Sequence[float] | np.ndarray,
    *,
    sig_level: float = 0.01,
    permutations: int = 199,
    min_size: int = 3,
    exponent: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Change points of a series by E-divisive means with a permutation test.

    Matteson & James, "A Nonparametric Approach for Multiple Change Point Analysis of
    Multivariate Data", JASA 109(505), 2014 -- the method MongoDB uses on its performance history
    (Daly et al., "The Use of Change Point Detection to Identify Software Performance Regressions
    in a Continuous Integration System", ICPE 2020). Hierarchical: the split tau that maximises
    the energy divergence Q = mk/(m+k) * E(left, right; exponent) over all current segments is
    kept when a permutation test (values shuffled within each current segment, `permutations`
    times, seeded) gives p = (1 + #{Q_perm >= Q}) / (permutations + 1) <= sig_level; then the
    search repeats on the new segments. As in the paper, the search also picks the end kappa of
    the right-hand sample (so two shifts in one segment do not hide each other). Segments are at
    least `min_size` long.

    Returns the indices where a new segment starts, ascending (empty for a flat series).
    """
    x = _as_values(values)
    if min_size < 2:
        raise ValueError(f"min_size must be at least 2, got {min_size}")
    if not 0.0 < exponent < 2.0:
        raise ValueError(f"exponent must be in (0, 2), got {exponent}")
    if not 0.0 < sig_level < 1.0:
        raise ValueError(f"sig_level must be between 0 and 1, got {sig_level}")
    rng = np.random.default_rng(seed)
    bounds = [0, x.size]
    while True:
        segments = [
            (a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b - a >= 2 * min_size
        ]
        best: tuple[float, int] | None = None
        for a, b in segments:
            q, tau = _e_divisive_best(x[None, a:b], exponent, min_size)
            if best is None or q[0] > best[0]:
                best = (float(q[0]), a + int(tau[0]))
        if best is None or best[0] <= 0.0:
            return bounds[1:-1]
        # The null distribution of the largest Q, with every current segment shuffled in place.
        largest = np.full(permutations, -np.inf)
        for a, b in segments:
            shuffled = rng.permuted(np.broadcast_to(x[a:b], (permutations, b - a)), axis=1)
            largest = np.maximum(largest, _e_divisive_best(shuffled, exponent, min_size)[0])
        p_value = (1 + int(np.sum(largest >= best[0] - 1e-12))) / (permutations + 1)
        if p_value > sig_level:
            return bounds[1:-1]
        bounds = sorted([*bounds, best[1]])


# Up to this many pairs (and with no zero or tied differences) the signed-rank interval uses the
# exact null distribution, as R's wilcox.test and scipy's wilcoxon do; beyond, the normal one.
SIGNED_RANK_EXACT_MAX = 50


def paired_log_ratio_ci(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    max_pairs: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio new/base (estimate, low, high) of paired measurements, from the signed-rank test.

    Hodges & Lehmann, "Estimates of location based on rank tests", Ann. Math. Statist. 34(2),
    1963; the interval by inverting the Wilcoxon signed-rank test as in Bauer, "Constructing
    confidence sets using rank statistics", JASA 67(339), 1972 (Hollander, Wolfe & Chicken,
    Nonparametric Statistical Methods, 3rd ed., 2014, chapter 3).

    With d_i = log(new_i) - log(base_i) for the n pairs, the M = n(n+1)/2 Walsh averages
    (d_i + d_j)/2, i <= j, sorted, are W_(1) <= ... <= W_(M). The estimate of the log ratio is
    their median. The signed-rank statistic T+ of d - delta equals the number of Walsh averages
    above delta, so the deltas the two-sided test at level alpha = 1 - confidence does not reject
    form [W_(c+1), W_(M-c)], where c is the largest integer with P(T+ <= c) <= alpha/2 under the
    null (T+ is then the sum of the ranks 1..n, each present with probability 1/2). That
    distribution is exact for up to SIGNED_RANK_EXACT_MAX pairs without zero or tied
    differences; otherwise it is the normal with mean M/2, variance n(n+1)(2n+1)/24 less the
    tie term sum(t^3 - t)/48, and a continuity correction: c = floor(M/2 - 1/2 - z sd). All three
    are exponentiated, so the answer is a ratio. Because each d_i compares two calls made next to
    each other, a machine whose speed drifts between pairs moves both and cancels.

    More than max_pairs pairs are first subsampled without replacement (seeded): the Walsh
    averages grow as the square of n.
    """
    _check_confidence(confidence)
    base_values = _as_values(base, "base")
    new_values = _as_values(new, "new")
    if base_values.size != new_values.size:
        raise ValueError(
            f"paired series must have the same length, got {base_values.size} base and "
            f"{new_values.size} new values"
        )
    if np.any(base_values <= 0.0) or np.any(new_values <= 0.0):
        raise ValueError("a ratio needs positive measurements; drop values <= 0")
    d = np.log(new_values) - np.log(base_values)
    if d.size > max_pairs:
        d = np.random.default_rng(seed).choice(d, size=max_pairs, replace=False)
    n = d.size
    total = n * (n + 1) // 2
    alpha = 1.0 - confidence
    _, tie_counts = np.unique(np.abs(d), return_counts=True)
    if n <= SIGNED_RANK_EXACT_MAX and not np.any(d == 0.0) and np.all(tie_counts == 1):
        allowed = np.nonzero(_signed_rank_cdf(n) <= alpha / 2.0)[0]
        c = int(allowed[-1]) if allowed.size else -1
    else:
        ties = tie_counts.astype(np.float64)
        variance = n * (n + 1) * (2 * n + 1) / 24.0 - float((ties**3 - ties).sum()) / 48.0
        z = _normal_ppf(1.0 - alpha / 2.0)
        c = math.floor(total / 2.0 - 0.5 - z * math.sqrt(max(variance, 0.0)))
    if c < 0 or 0.5**n > alpha / 2.0:
        # The second test: with ties the normal approximation would also allow too few pairs
        # for even the widest interval's exact coverage, 1 - 2 * 2^-n.
        raise ValueError(
            f"a {confidence:.0%} interval for a paired ratio needs more pairs, got {n}"
        )
    i, j = np.triu_indices(n)
    walsh = (d[i] + d[j]) / 2.0
    mid = [(total - 1) // 2, total // 2]
    ordered = np.partition(walsh, sorted({c, total - 1 - c, *mid}))
    estimate = (ordered[mid[0]] + ordered[mid[1]]) / 2.0
    return (
        float(np.exp(estimate)),
        float(np.exp(ordered[c])),
        float(np.exp(ordered[total - 1 - c])),
    )


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2, T+ the Wilcoxon signed-rank statistic of n pairs under
    the null: the number of subsets of {1..n} with each sum, over 2^n (exact in int64 to n=62)."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.int64)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] += counts[:-rank].copy()  # subsets with `rank` added to those without
    return np.cumsum(counts) / float(2**n)
