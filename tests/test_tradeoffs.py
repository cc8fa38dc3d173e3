"""Trade-off logic on hand-made records: Pareto fronts, noise-proof speed-ups, budget answers."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from accelbench.errors import UsageError
from accelbench.records import metric
from accelbench.report.tradeoffs import (
    Budget,
    answer_budget,
    clearly_faster,
    pareto_front,
    points,
    recommendation,
)


def _record(
    opt: str, p50: float, acc: float, *, size: int = 1000, flagged=(), spread=0.02, n: int = 400
):
    rng = np.random.default_rng(zlib.crc32(opt.encode()))
    raw = (p50 * (1 + spread * rng.standard_normal(n))).tolist()
    return {
        "model": "m",
        "optimization": opt,
        "profile": "host",
        "execution": "local",
        "threads": 1,
        "scenario": "single-stream",
        "status": "ok",
        "metrics": {
            "latency_p50_ms": metric(p50, "ms", "lower"),
            "accuracy": metric(acc, "fraction", "higher"),
            "accuracy_delta": metric(acc - 0.95, "fraction", "higher"),
            "model_bytes": metric(size, "bytes", "lower"),
        },
        "quality": {"flagged_classes": list(flagged), "worst_class_delta": -0.05 if flagged else 0},
        "raw_latencies_ms": raw,
    }


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = points(
        [
            _record("fp32", 1.0, 0.95),
            _record("int8", 0.5, 0.94),
            _record("slow_bad", 1.2, 0.90),
            _record("fast_bad", 0.4, 0.80),
        ]
    )
    front = [p.optimization for p in pareto_front(pts)]
    assert front == ["fast_bad", "int8", "fp32"]


def test_a_small_or_noisy_difference_is_not_a_speed_up() -> None:
    base, close, far = points(
        [
            _record("fp32", 1.00, 0.95),
            _record("close", 0.97, 0.95),
            _record("far", 0.5, 0.95),
        ]
    )
    assert not clearly_faster(close, base)  # 3%: below the 10% floor
    assert clearly_faster(far, base)
    noisy_base, noisy = points(
        [
            _record("fp32", 1.0, 0.95, spread=0.6, n=30),
            _record("noisy", 0.85, 0.95, spread=0.6, n=30),
        ]
    )
    assert not clearly_faster(noisy, noisy_base)  # 15% but the medians' intervals overlap
    assert noisy.unstable
    # Without a paired cell, not even a 2x figure is shown as a speed-up: two cells measured
    # minutes apart compare the machine's speed at two moments.
    for opt, p50 in (("q", 0.97), ("far", 0.5)):
        sentence = recommendation(
            points([_record("fp32", 1.0, 0.95), _record(opt, p50, 0.95)]), "m", "host"
        )
        assert "none is shown faster" in sentence and "faster than fp32" not in sentence
        assert "(separately measured cells, not evidence of a difference)" in sentence


def _paired(opt: str, ratio: float, spread: float = 0.02) -> dict:
    """A suite's paired record of opt against fp32: time ratio opt/fp32 and its intervals."""
    return {
        "model": "m",
        "optimization": opt,
        "profile": "host",
        "execution": "local",
        "threads": 1,
        "scenario": "paired",
        "status": "ok",
        "metrics": {},
        "paired": {
            "base": "fp32",
            "ratio": ratio,
            "ci_low": ratio * (1 - spread),
            "ci_high": ratio * (1 + spread),
            "round_ratio_min": ratio * (1 - 2 * spread),
            "round_ratio_max": ratio * (1 + 2 * spread),
            "rounds": 5,
            "confidence": 0.95,
        },
    }


def test_recommendation_prefers_an_optimization_that_hurts_no_class() -> None:
    pts = points(
        [
            _record("fp32", 1.0, 0.95, size=4000),
            _record("prune", 0.4, 0.96, size=1000, flagged=["cat"]),
            _paired("prune", 0.4),
            _record("int8", 0.5, 0.95, size=1000),
            _paired("int8", 0.5),
        ]
    )
    sentence = recommendation(pts, "m", "host")
    assert sentence.startswith(
        "on host, int8 is 2.00× (95% CI 1.96–2.04, 5 rounds 1.92–2.08, paired) faster than fp32"
    )
    flagged_only = points(
        [_record("fp32", 1.0, 0.95), _record("p", 0.5, 0.95, flagged=["cat"]), _paired("p", 0.5)]
    )
    assert "cat lose more than 2 points" in recommendation(flagged_only, "m", "host")


def test_budget_answers_and_names_the_closest_miss() -> None:
    pts = points([_record("fp32", 4.0, 0.95, size=2_000_000), _record("int8", 1.0, 0.93)])
    lines = answer_budget(pts, Budget(max_latency_ms=5, min_quality=0.9, max_size_mb=1))
    assert lines[0].startswith("1 of 2 results meet the budget")
    assert "int8" in lines[1]
    lines = answer_budget(pts, Budget(max_latency_ms=0.5, min_quality=0.94))
    assert lines[0].startswith("nothing in this run meets the budget")
    assert "latency" in lines[1]
    with pytest.raises(UsageError, match="rpi4"):
        answer_budget(pts, Budget(max_latency_ms=1), profile="rpi4")


def _projected(opt: str, ms: float, band: tuple[float, float] | None) -> dict:
    rests_on = "checked on 5 published rows for edge-tpu: worst 1.7×" if band else "unchecked"
    return {
        **_record(opt, ms, 0.95),
        "profile": "coral-edgetpu",
        "execution": "projected",
        "metrics": {
            "projected_latency_ms": metric(ms, "ms", "lower"),
            "model_bytes": metric(1000, "bytes", "lower"),
        },
        "raw_latencies_ms": None,
        "projection": {
            "projected_latency_ms": ms,
            "band": {
                "low_ms": band[0] if band else None,
                "high_ms": band[1] if band else None,
                "rests_on": rests_on,
            },
        },
    }


def test_a_projected_figure_carries_its_band_and_a_straddled_budget_is_said() -> None:
    (inside,) = points([_projected("int8", 2.0, (1.2, 3.4))])
    assert inside.device_band == (1.2, 3.4) and "edge-tpu" in inside.device_band_rests_on
    # Inside the budget, but the band reaches over it: the answer says so.
    lines = answer_budget([inside], Budget(max_latency_ms=3))
    assert lines[0].startswith("1 of 1 results meet the budget")
    assert "2 ms (projected; band 1.2–3.4 ms)" in lines[1]
    assert "straddles the 3 ms budget, so it may miss it on the device" in lines[1]
    # A band wholly inside the budget needs no warning.
    assert "straddles" not in answer_budget([inside], Budget(max_latency_ms=5))[1]
    # Outside the budget, but the band reaches under it.
    lines = answer_budget([inside], Budget(max_latency_ms=1.5))
    assert lines[0].startswith("nothing in this run meets the budget")
    assert "straddles the 1.5 ms budget, so it may meet it on the device" in lines[1]
    # A projection nothing checks says so instead of a band.
    (unchecked,) = points([_projected("int8", 2.0, None)])
    assert unchecked.device_band is None
    assert "2 ms (projected; unchecked)" in answer_budget([unchecked], Budget(max_latency_ms=3))[1]
