"""Paired measurement and `accelbench ab`: the statistics against known values, the pairing on
scripted runtimes (a drifting machine must cancel), and the command on real .tflite models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, run_cli

from accelbench.benchmarks.paired import compare_sides, measure_pairs, side_summary, verdict
from accelbench.stats import paired_log_ratio_ci

# ---------------------------------------------------------------------------------------------
# paired_log_ratio_ci


def _ci_of_differences(d, confidence=0.95):
    """The interval on log ratios d, through the public ratio function (base 1, new e^d)."""
    d = np.asarray(d, dtype=np.float64)
    ratio, low, high = paired_log_ratio_ci(np.ones_like(d), np.exp(d), confidence)
    return math.log(ratio), math.log(low), math.log(high)


def test_signed_rank_interval_hand_computed() -> None:
    # d = 1..5: 15 Walsh averages from 1 to 5, median 3. P(T+ <= 0) = 1/32 <= 0.05 but
    # P(T+ <= 1) = 2/32 > 0.05, so at 90% c = 0: the extreme Walsh averages.
    assert _ci_of_differences([1, 2, 3, 4, 5], 0.90) == pytest.approx((3.0, 1.0, 5.0))
    # d = 1..7 at 95%: P(T+ <= 2) = 3/128 <= 0.025 < P(T+ <= 3) = 5/128, so c = 2: the third
    # smallest Walsh average (1, 1.5, 2) and the third largest (7, 6.5, 6); the median is 4.
    assert _ci_of_differences(range(1, 8)) == pytest.approx((4.0, 2.0, 6.0))
    # Five pairs cannot give 95%: even the widest interval covers only 1 - 2/32.
    for new in ([2.0, 3.0, 4.0, 5.0, 6.0], [2.0] * 5):  # without and with ties
        with pytest.raises(ValueError, match="needs more pairs"):
            paired_log_ratio_ci([1.0] * 5, new)


def test_identical_pair_ratios_give_that_ratio_exactly() -> None:
    base = np.linspace(1.0, 3.0, 300)  # a machine whose speed triples over the run
    assert paired_log_ratio_ci(base, base * 1.1) == pytest.approx((1.1, 1.1, 1.1), rel=1e-12)


def test_paired_ratio_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_log_ratio_ci([1.0] * 10, [1.0] * 9)
    with pytest.raises(ValueError, match="positive"):
        paired_log_ratio_ci([1.0] * 10, [0.0] * 10)


@pytest.mark.parametrize("n", [12, 40, 300])
def test_signed_rank_interval_inverts_scipy_wilcoxon(n: int) -> None:
    """Each bound is where scipy's two-sided signed-rank test of d - delta starts rejecting."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    base = rng.uniform(1.0, 2.0, n)
    new = base * np.exp(rng.normal(0.05, 0.1, n))
    d = np.log(new) - np.log(base)
    method = "exact" if n <= 50 else "asymptotic"  # as paired_log_ratio_ci chooses
    ratio, low, high = paired_log_ratio_ci(base, new)
    eps = 1e-9
    for bound, outward in ((low, -eps), (high, eps)):
        outside = stats.wilcoxon(d - (math.log(bound) + outward), method=method).pvalue
        inside = stats.wilcoxon(d - (math.log(bound) - outward), method=method).pvalue
        assert outside <= 0.05 < inside, (bound, outside, inside)
    # The estimate is the median of the Walsh averages.
    i, j = np.triu_indices(n)
    assert math.log(ratio) == pytest.approx(np.median((d[i] + d[j]) / 2.0))


# ---------------------------------------------------------------------------------------------
# measure_pairs on scripted runtimes


class _Machine:
    """A fake clock in ns; each pair of calls runs at its own speed (drift between pairs)."""

    def __init__(self, speeds: np.ndarray, noise: float = 0.0, seed: int = 0) -> None:
        self.now = 0
        self.calls = 0
        self.speeds = speeds
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.log: list[tuple[str, int]] = []

    def clock(self) -> int:
        return self.now

    def spend(self, name: str, cost_ns: float, sample: int) -> None:
        factor = self.speeds[(self.calls // 2) % len(self.speeds)]
        jitter = math.exp(self.rng.normal(0.0, self.noise)) if self.noise else 1.0
        self.now += max(1, round(cost_ns * factor * jitter))
        self.calls += 1
        self.log.append((name, sample))


class _ScriptedRuntime:
    """A Runtime whose call costs cost_ns on the machine; its sample's first value is recorded."""

    def __init__(self, name: str, cost_ns: float, machine: _Machine) -> None:
        self.name, self.cost_ns, self.machine = name, cost_ns, machine

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.machine.spend(self.name, self.cost_ns, int(inputs[0][0]))
        return [np.zeros(1)]


def _samples(offset: int, n: int) -> list[list[np.ndarray]]:
    return [[np.array([offset + i])] for i in range(n)]


def _measure(machine: _Machine, costs=(1000.0, 1100.0), **kwargs):
    runtimes = [_ScriptedRuntime(f"s{i}", c, machine) for i, c in enumerate(costs)]
    samples = [_samples(100 * i, 8) for i in range(len(costs))]
    kwargs = {"pairs": 100, "rounds": 4, "seed": 3, "warmup": 4, **kwargs}
    return measure_pairs(runtimes, samples, clock=machine.clock, **kwargs)


def test_drift_between_pairs_cancels() -> None:
    # The machine's speed wanders between 0.5x and 2x from pair to pair (a random walk), with
    # 3% noise per call; NEW does 10% more work.
    walk = np.cumsum(np.random.default_rng(0).normal(0.0, 0.15, 2000))
    speeds = np.exp(np.clip(walk, math.log(0.5), math.log(2.0)))
    assert speeds.max() / speeds.min() > 3.0
    times = _measure(_Machine(speeds, noise=0.03))
    result = compare_sides(times)
    assert result["ci_low"] <= 1.1 <= result["ci_high"]
    assert result["ci_high"] - result["ci_low"] < 0.02
    assert all(abs(r - 1.1) < 0.02 for r in result["round_ratios"])
    assert verdict(result["ratio"], result["ci_low"], result["ci_high"], 0.05) == "regressed"
    # A/A on the same drifting machine: unchanged at a 2% threshold.
    same = compare_sides(_measure(_Machine(speeds, noise=0.03), costs=(1000.0, 1000.0)))
    assert verdict(same["ratio"], same["ci_low"], same["ci_high"], 0.02) == "unchanged"


def test_order_is_seeded_balanced_and_as_called() -> None:
    speeds = np.ones(1)
    machine = _Machine(speeds)
    times = _measure(machine, pairs=101, rounds=3)
    again = _measure(_Machine(speeds), pairs=101, rounds=3)
    other = _measure(_Machine(speeds), pairs=101, rounds=3, seed=4)
    assert times.order.shape == (3, 101, 2)
    assert np.array_equal(times.order, again.order)
    assert not np.array_equal(times.order, other.order)
    for round_order in times.order:
        base_first = int(np.sum(round_order[:, 0] == 0))
        assert base_first in (50, 51)  # each side goes first in half the pairs, to within one
    # The calls after the warm-up were made in exactly the recorded order, on the same sample
    # index for both sides of a pair, cycling through the 8 samples.
    timed = machine.log[4 * 2 :]
    expected = [
        (f"s{side}", 100 * side + p % 8)
        for r in range(3)
        for p in range(101)
        for side in times.order[r, p]
    ]
    assert timed == expected
    # Each call took its scripted cost on this steady machine: 1000 ns and 1100 ns.
    assert np.all(times.times_ns[0] == 1000) and np.all(times.times_ns[1] == 1100)
    assert side_summary(times, 1) == pytest.approx({"p50_ms": 0.0011, "p90_ms": 0.0011})


def test_three_sides_each_go_first_equally() -> None:
    times = _measure(_Machine(np.ones(1)), costs=(1000.0, 1100.0, 900.0), pairs=99, rounds=2)
    for round_order in times.order:
        assert sorted(np.bincount(round_order[:, 0])) == [33, 33, 33]
        assert all(sorted(o) == [0, 1, 2] for o in round_order.tolist())
    assert compare_sides(times, 0, 2)["ratio"] == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("ratio", "low", "high", "expected"),
    [
        (1.10, 1.08, 1.12, "regressed"),
        (1.04, 1.02, 1.06, "inconclusive"),  # surely slower, but by less than 5%
        (1.10, 0.99, 1.20, "inconclusive"),  # slower by 10%, but the interval reaches 1
        (0.90, 0.88, 0.92, "improved"),
        (1.00, 0.97, 1.04, "unchanged"),
        (1.00, 0.94, 1.04, "inconclusive"),  # could be 6% faster
    ],
)
def test_verdict(ratio: float, low: float, high: float, expected: str) -> None:
    assert verdict(ratio, low, high, 0.05) == expected


# ---------------------------------------------------------------------------------------------
# accelbench ab


def _error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("accelbench: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.tflite", str(DATA / "cnn_f32.tflite")], "does not exist"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--profile", "nvidia-t4"], "projected"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--threshold", "five"], "--threshold"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--pairs", "5", "--rounds", "1"], "too few"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--runtime", "jax"], "cannot run"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--inputs", str(DATA / "mlp.keras")], "NumPy"),
    ],
)
def test_ab_bad_input_exits_2_and_writes_nothing(tmp_path: Path, args, needle: str) -> None:
    out = tmp_path / "run"
    proc = run_cli("ab", *args, "--out", str(out))
    assert needle in _error_line(proc)
    assert not out.exists()


def _ab(tmp_path: Path, base: str, new: str, *extra: str, env=None):
    out = tmp_path / "run"
    args = ["ab", str(DATA / base), str(DATA / new), "--threads", "1", "--out", str(out)]
    proc = run_cli(*args, "--pairs", "50", "--rounds", "2", *extra, env=env, timeout=120)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return proc, records


def test_ab_same_model_twice_is_not_a_regression(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.npz"
    samples = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    np.savez(inputs, image=samples)
    proc, records = _ab(tmp_path, "cnn_f32.tflite", "cnn_f32.tflite", "--inputs", str(inputs))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "NEW/BASE" in proc.stdout
    (record,) = records
    assert record["status"] == "ok" and record["execution"] == "local"
    assert record["scenario"] == "paired" and record["threads"] == 1
    assert record["metrics"]["paired_ratio"]["unit"] == "x"
    assert record["metrics"]["paired_ratio"]["direction"] == "lower"
    assert 0.8 < record["metrics"]["paired_ratio"]["value"] < 1.25
    assert record["settings"]["pairs"] == 50 and record["settings"]["rounds"] == 2
    assert record["settings"]["seed"] == 0 and record["settings"]["inputs"] == str(inputs)
    paired = record["paired"]
    assert paired["verdict"] != "regressed"
    assert paired["samples"] == 16
    assert len(paired["times_ms"]["base"]) == len(paired["times_ms"]["new"]) == 100
    assert len(paired["order"]) == 100 and len(paired["round_ratios"]) == 2
    assert paired["artifacts"]["base"]["sha256"] == paired["artifacts"]["new"]["sha256"]


def test_ab_more_work_regresses_and_less_work_improves(tmp_path: Path) -> None:
    # conv6 runs six identical convolutions where conv2 runs two.
    proc, (record,) = _ab(tmp_path, "conv2_f32.tflite", "conv6_f32.tflite")
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert record["paired"]["verdict"] == "regressed"
    assert record["metrics"]["paired_ratio_ci_low"]["value"] > 1.5
    assert "regressed" in proc.stdout

    proc, (record,) = _ab(
        tmp_path / "swapped", "conv6_f32.tflite", "conv2_f32.tflite", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (row,) = json.loads(proc.stdout)["comparisons"]
    assert row["verdict"] == "improved" and row["ci_high"] < 0.67
    assert row["base_p50_ms"] > row["new_p50_ms"]


def test_ab_failed_worker_fails_the_comparison(tmp_path: Path) -> None:
    fault = {"ACCELBENCH_WORKER_FAULT": "raise"}
    proc, (record,) = _ab(tmp_path, "cnn_f32.tflite", "cnn_f32.tflite", env=fault)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert record["status"] == "failed" and "injected fault" in record["error"]
    assert "failed: RuntimeError: injected fault" in proc.stdout

    hang = {"ACCELBENCH_WORKER_FAULT": "hang"}
    proc, (record,) = _ab(
        tmp_path / "hang", "cnn_f32.tflite", "cnn_f32.tflite", "--timeout", "3", env=hang
    )
    assert proc.returncode == 1 and record["error"] == "timed out after 3 s"


@pytest.mark.parametrize(
    ("ratio", "low", "high", "rounds", "expected"),
    [
        (1.10, 1.08, 1.12, (1.05, 1.15), "regressed"),  # every round slower
        (1.10, 1.08, 1.12, (0.97, 1.15), "inconclusive"),  # one round says faster
        (0.90, 0.88, 0.92, (0.85, 0.95), "improved"),
        (0.90, 0.88, 0.92, (0.85, 1.02), "inconclusive"),
        (1.00, 0.97, 1.04, (0.80, 1.20), "unchanged"),  # no claim of a difference to veto
    ],
)
def test_a_claim_needs_every_round_on_its_side(
    ratio: float, low: float, high: float, rounds: tuple[float, float], expected: str
) -> None:
    assert verdict(ratio, low, high, 0.05, rounds) == expected
