"""Paired measurement: runtimes loaded in one process, timed query by query in a shuffled order.

On a shared machine whose speed drifts by tens of percent within a minute, two figures taken at
different moments mostly measure the machine. Here the sides of a comparison are called one right
after the other, in pairs (one call of each side per pair, the order drawn per pair from a seeded
generator and balanced so each side goes first equally often), and a ratio is taken per pair.
Drift slower than a pair multiplies both calls of the pair alike and cancels in its ratio. The
overall ratio is the Hodges–Lehmann estimate of the per-pair log ratios with its signed-rank
interval (``accelbench.stats.paired_log_ratio_ci``); the pairs also fall into rounds, whose
median ratios give a second, across-round view of the spread.

A call is timed as the LoadGen SUT makes it for one sample (inputs copied in, invoke, outputs
copied out: ``runtime.run`` and the outputs as arrays), so per-side figures sit close to a
single-stream run's. This module works on Runtime objects and imports no framework.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelbench.errors import UsageError

# numpy is imported in the functions that use it: `accelbench --help` reads this module's
# defaults and must not load numpy.
if TYPE_CHECKING:
    import numpy as np

    from accelbench.runtimes.base import Runtime

DEFAULT_PAIRS = 200
DEFAULT_ROUNDS = 5
DEFAULT_THRESHOLD = 0.05
CONFIDENCE = 0.95
# The fewest pairs a 95% signed-rank interval exists for: 2**-n <= 0.025 needs n >= 6.
MIN_PAIRS = 6
VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")


@dataclass
class PairedTimes:
    """What a paired measurement timed: the call times of each side and the order they ran in.

    ``times_ns[s, r, p]`` is side s's call in pair p of round r; ``order[r, p]`` lists the side
    indices of that pair in the order they were called. Pair p used sample ``p % samples`` (the
    same index on every side).
    """

    sides: list[str]
    seed: int
    times_ns: np.ndarray
    order: np.ndarray
    samples: int
    warmup_calls: int

    @property
    def rounds(self) -> int:
        return int(self.times_ns.shape[1])

    @property
    def pairs(self) -> int:
        return int(self.times_ns.shape[2])

    def times_ms(self, side: int) -> np.ndarray:
        """Side's call times in ms, round after round, as one series."""
        return self.times_ns[side].reshape(-1) / 1e6


def pair_orders(n_sides: int, rounds: int, pairs: int, rng: np.random.Generator) -> np.ndarray:
    """The call order of every pair, shape (rounds, pairs, n_sides).

    In each round the first side cycles through all sides (so each goes first equally often,
    to within one, and a cost of going first or second falls on every side alike), then the
    pairs are shuffled; the sides after the first follow in a random order.
    """
    import numpy as np

    order = np.empty((rounds, pairs, n_sides), dtype=np.int64)
    for r in range(rounds):
        firsts = rng.permutation(np.arange(pairs) % n_sides)
        for p, first in enumerate(firsts):
            rest = [s for s in range(n_sides) if s != first]
            order[r, p] = [first, *rng.permutation(rest)]
    return order


def measure_pairs(
    runtimes: Sequence[Runtime],
    samples: Sequence[Sequence[list[np.ndarray]]],
    *,
    pairs: int = DEFAULT_PAIRS,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    warmup: int | None = None,
    sides: Sequence[str] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> PairedTimes:
    """Time the runtimes against each other in rounds of pairs of calls, in a seeded order.

    ``samples[s]`` are side s's input samples; the sides cycle through the same number of them
    (the fewest any side has). Each side first runs ``warmup`` calls (default: every sample
    once, at least 10), interleaved, so that a one-time cost (allocation, a JIT compile) lands
    there. ``clock`` returns nanoseconds (tests pass a scripted one).
    """
    import numpy as np

    n_sides = len(runtimes)
    names = list(sides) if sides is not None else [f"side{i}" for i in range(n_sides)]
    if n_sides < 2 or len(samples) != n_sides or len(names) != n_sides:
        raise UsageError(
            f"paired measurement needs two or more runtimes, each with its samples and name; got "
            f"{n_sides} runtimes, {len(samples)} sample sets and {len(names)} names"
        )
    for name, value in (("pairs", pairs), ("rounds", rounds)):
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    n_samples = min(len(s) for s in samples)
    if n_samples < 1:
        raise UsageError("every side needs at least one input sample")
    warmup_calls = max(n_samples, 10) if warmup is None else warmup

    def call(side: int, index: int) -> None:
        # The LoadGen SUT's call for one sample: run, then every output as an array.
        [np.asarray(output) for output in runtimes[side].run(samples[side][index])]

    for i in range(warmup_calls):
        for side in range(n_sides):
            call(side, i % n_samples)

    rng = np.random.default_rng(seed)
    order = pair_orders(n_sides, rounds, pairs, rng)
    times = np.zeros((n_sides, rounds, pairs), dtype=np.int64)
    for r in range(rounds):
        # A collection inside one call would land on one side only; collect between rounds.
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for p in range(pairs):
                index = p % n_samples
                for side in order[r, p]:
                    started = clock()
                    call(int(side), index)
                    times[side, r, p] = clock() - started
        finally:
            if was_enabled:
                gc.enable()
    if np.any(times <= 0):
        raise RuntimeError("the clock did not advance over a call; it cannot time these models")
    return PairedTimes(names, seed, times, order, n_samples, warmup_calls)


def compare_sides(
    times: PairedTimes, base: int = 0, new: int = 1, confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Side new against side base: the ratio new/base with its interval, and the round ratios.

    ``ratio``, ``ci_low``, ``ci_high``: exp of the Hodges–Lehmann estimate of the per-pair log
    ratios and its signed-rank interval over every pair. ``round_ratios``: per round, the median
    of that round's per-pair ratios; their min and max are the across-round range.
    """
    import numpy as np

    from accelbench.stats import paired_log_ratio_ci

    base_ns = times.times_ns[base].astype(np.float64)
    new_ns = times.times_ns[new].astype(np.float64)
    ratio, low, high = paired_log_ratio_ci(
        base_ns.reshape(-1), new_ns.reshape(-1), confidence=confidence, seed=times.seed
    )
    round_ratios = [float(np.median(n / b)) for b, n in zip(base_ns, new_ns, strict=True)]
    return {
        "ratio": ratio,
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "round_ratios": round_ratios,
        "round_ratio_min": min(round_ratios),
        "round_ratio_max": max(round_ratios),
        "rounds": times.rounds,
        "pairs": times.rounds * times.pairs,
    }


def side_summary(times: PairedTimes, side: int) -> dict[str, float]:
    """A side's pooled call times: median and p90 in ms over every pair of every round."""
    from accelbench.stats import percentile

    values = times.times_ms(side)
    return {"p50_ms": percentile(values, 50.0), "p90_ms": percentile(values, 90.0)}


def verdict(ratio: float, low: float, high: float, threshold: float) -> str:
    """The verdict on a time ratio NEW/BASE (lower is better) with its interval [low, high].

    ``regressed``: the interval lies above 1 and the estimate above 1 + threshold (NEW is slower,
    surely, and by more than the threshold); ``improved``: the interval lies below 1 and the
    estimate below 1 - threshold; ``unchanged``: the whole interval lies within
    [1 - threshold, 1 + threshold] (any difference is surely smaller than the threshold);
    anything else is ``inconclusive`` (too noisy to say, or a real change of about the threshold).
    """
    if not threshold >= 0.0:
        raise UsageError(f"threshold must be a relative change >= 0, got {threshold}")
    if low > 1.0 and ratio > 1.0 + threshold:
        return "regressed"
    if high < 1.0 and ratio < 1.0 - threshold:
        return "improved"
    if 1.0 - threshold <= low and high <= 1.0 + threshold:
        return "unchanged"
    return "inconclusive"


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The worker's side of ``accelbench ab``: load BASE (the cell's model) and NEW together
    with the cell's runtime, threads and XNNPACK setting, time them in pairs, and return the
    result: metrics, the settings as run, and the raw pairs under ``settings.paired``."""
    from accelbench.records import artifact_info, metric
    from accelbench.runtimes import load_inputs, make_inputs, open_runtime
    from accelbench.runtimes.inputs import DEFAULT_SAMPLE_COUNT

    options = cell["settings"]["ab"]
    seed = int(cell["seed"])
    paths = {"base": Path(cell["model_path"]), "new": Path(options["new_path"])}
    inputs = {"base": options.get("base_inputs"), "new": options.get("new_inputs")}
    runtimes: dict[str, Runtime] = {}
    try:
        for side, path in paths.items():
            runtimes[side] = open_runtime(
                path, cell["runtime"], threads=int(cell["threads"]), xnnpack=bool(cell["xnnpack"])
            )
        samples = {}
        for side, runtime in runtimes.items():
            specs = runtime.inputs()
            if inputs[side]:
                samples[side] = load_inputs(inputs[side], specs)
            else:
                samples[side] = make_inputs(specs, DEFAULT_SAMPLE_COUNT, seed=seed)
        times = measure_pairs(
            [runtimes["base"], runtimes["new"]],
            [samples["base"], samples["new"]],
            pairs=int(options["pairs"]),
            rounds=int(options["rounds"]),
            seed=seed,
            sides=["base", "new"],
        )
        infos = {side: runtime.info() for side, runtime in runtimes.items()}
    finally:
        for runtime in runtimes.values():
            runtime.close()

    compared = compare_sides(times)
    base, new = side_summary(times, 0), side_summary(times, 1)
    metrics = {
        "paired_ratio": metric(compared["ratio"], "x", "lower"),
        "paired_ratio_ci_low": metric(compared["ci_low"], "x", "none"),
        "paired_ratio_ci_high": metric(compared["ci_high"], "x", "none"),
        "paired_round_ratio_min": metric(compared["round_ratio_min"], "x", "none"),
        "paired_round_ratio_max": metric(compared["round_ratio_max"], "x", "none"),
        "paired_rounds": metric(times.rounds, "rounds", "none"),
        "paired_pairs": metric(compared["pairs"], "pairs", "none"),
        "base_p50_ms": metric(base["p50_ms"], "ms", "lower"),
        "base_p90_ms": metric(base["p90_ms"], "ms", "lower"),
        "new_p50_ms": metric(new["p50_ms"], "ms", "lower"),
        "new_p90_ms": metric(new["p90_ms"], "ms", "lower"),
    }
    artifacts = {side: artifact_info(path) for side, path in paths.items()}
    paired = {
        "sides": times.sides,
        "artifacts": artifacts,
        "runtimes": infos,
        "seed": seed,
        "samples": times.samples,
        "warmup_calls": times.warmup_calls,
        # Per pair, the sides in the order they were called (0 = base, 1 = new).
        "order": times.order.reshape(-1, len(times.sides)).tolist(),
        "times_ms": {side: times.times_ms(i).tolist() for i, side in enumerate(times.sides)},
        **compared,
    }
    return {
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "artifact": artifacts["base"],
        "runtime": infos["base"],
        "settings": {
            "pairs": times.pairs,
            "rounds": times.rounds,
            "seed": seed,
            "confidence": compared["confidence"],
            "new_model": str(paths["new"]),
            "new_inputs": inputs["new"] or "synthetic",
            "paired": paired,
        },
    }
