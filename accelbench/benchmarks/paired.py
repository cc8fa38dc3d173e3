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
single-stream run's; for two HTTP endpoints (``run_endpoints``) a call is one prepared request
sent and its answer received. This module works on Runtime objects and imports no framework.
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
# A suite's paired cells: modest, so the default suite's nine of them take about a minute.
SUITE_PAIRS = 100
SUITE_ROUNDS = 5
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


def verdict(
    ratio: float,
    low: float,
    high: float,
    threshold: float,
    round_range: tuple[float, float] | None = None,
) -> str:
    """The verdict on a time ratio NEW/BASE (lower is better) with its interval [low, high].

    ``regressed``: the interval lies above 1, the estimate above 1 + threshold and every round's
    ratio above 1 (NEW is slower, surely, by more than the threshold, and in each round);
    ``improved``: the mirror image; ``unchanged``: the whole interval lies within
    [1 - threshold, 1 + threshold] (any difference is surely smaller than the threshold);
    anything else is ``inconclusive`` (too noisy to say, or a real change of about the threshold).

    The interval is over all pairs, so it does not see a change of the machine's state that
    lasts a round (another tenant's burst); ``round_range`` (the lowest and highest per-round
    ratio) keeps such a round from carrying a claim alone.
    """
    if not threshold >= 0.0:
        raise UsageError(f"threshold must be a relative change >= 0, got {threshold}")
    lowest, highest = round_range if round_range is not None else (low, high)
    if low > 1.0 and ratio > 1.0 + threshold:
        return "regressed" if lowest > 1.0 else "inconclusive"
    if high < 1.0 and ratio < 1.0 - threshold:
        return "improved" if highest < 1.0 else "inconclusive"
    if 1.0 - threshold <= low and high <= 1.0 + threshold:
        return "unchanged"
    return "inconclusive"


def round_range(paired: dict[str, Any]) -> tuple[float, float] | None:
    """The lowest and highest per-round ratio of a paired result, where it has them."""
    if paired.get("round_ratio_min") is None or paired.get("round_ratio_max") is None:
        return None
    return float(paired["round_ratio_min"]), float(paired["round_ratio_max"])


def check_suite_options(value: Any) -> dict[str, int] | bool:
    """A suite's ``paired`` field: ``false`` (no paired cells) or a mapping of ``pairs`` and
    ``rounds`` (defaults SUITE_PAIRS and SUITE_ROUNDS); returns it with the defaults filled in."""
    if value is False:
        return False
    if value is True or value is None:
        value = {}
    if not isinstance(value, dict):
        raise UsageError(
            f"must be false or a mapping of pairs and rounds, for example {{pairs: {SUITE_PAIRS}, "
            f"rounds: {SUITE_ROUNDS}}}; got {value!r}"
        )
    unknown = sorted(set(value) - {"pairs", "rounds"})
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; the options are pairs and rounds")
    options = {
        "pairs": value.get("pairs", SUITE_PAIRS),
        "rounds": value.get("rounds", SUITE_ROUNDS),
    }
    for name, number in options.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise UsageError(f"{name} must be a positive integer, got {number!r}")
    if options["pairs"] * options["rounds"] < MIN_PAIRS:
        raise UsageError(
            f"pairs x rounds gives {options['pairs'] * options['rounds']} pairs, too few for a 95% "
            f"interval; give at least {MIN_PAIRS}"
        )
    return options


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The worker's side of a paired cell: ``accelbench ab``'s two models, or a suite's
    optimizations of one model against its fp32 artifact (see run_optimizations)."""
    if "ab" in cell["settings"]:
        return run_ab(cell)
    return run_optimizations(cell)


def _measure(
    cell: dict[str, Any],
    paths: Sequence[Path],
    inputs: Sequence[str | None],
    names: Sequence[str],
    pairs: int,
    rounds: int,
) -> tuple[PairedTimes, list[dict[str, Any]]]:
    """Open every side with the cell's runtime, threads and XNNPACK setting, time them in pairs
    and return the times and each side's runtime info."""
    from accelbench.runtimes import load_inputs, make_inputs, open_runtime
    from accelbench.runtimes.inputs import DEFAULT_SAMPLE_COUNT

    seed = int(cell["seed"])
    runtimes: list[Runtime] = []
    try:
        for path in paths:
            runtimes.append(
                open_runtime(
                    path,
                    cell["runtime"],
                    threads=int(cell["threads"]),
                    xnnpack=bool(cell["xnnpack"]),
                )
            )
        samples = []
        for runtime, given in zip(runtimes, inputs, strict=True):
            specs = runtime.inputs()
            if given:
                samples.append(load_inputs(given, specs))
            else:
                samples.append(make_inputs(specs, DEFAULT_SAMPLE_COUNT, seed=seed))
        times = measure_pairs(runtimes, samples, pairs=pairs, rounds=rounds, seed=seed, sides=names)
        infos = [runtime.info() for runtime in runtimes]
    finally:
        for runtime in runtimes:
            runtime.close()
    return times, infos


def _comparison(times: PairedTimes, base: int, new: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Side new against side base: the record's metrics and its ``paired`` section (the two
    sides' call times, their call order within each pair, and the ratio with its intervals)."""
    from accelbench.records import metric

    compared = compare_sides(times, base, new)
    base_times, new_times = side_summary(times, base), side_summary(times, new)
    metrics = {
        "paired_ratio": metric(compared["ratio"], "x", "lower"),
        "paired_ratio_ci_low": metric(compared["ci_low"], "x", "none"),
        "paired_ratio_ci_high": metric(compared["ci_high"], "x", "none"),
        "paired_round_ratio_min": metric(compared["round_ratio_min"], "x", "none"),
        "paired_round_ratio_max": metric(compared["round_ratio_max"], "x", "none"),
        "paired_rounds": metric(times.rounds, "rounds", "none"),
        "paired_pairs": metric(compared["pairs"], "pairs", "none"),
        "base_p50_ms": metric(base_times["p50_ms"], "ms", "lower"),
        "base_p90_ms": metric(base_times["p90_ms"], "ms", "lower"),
        "new_p50_ms": metric(new_times["p50_ms"], "ms", "lower"),
        "new_p90_ms": metric(new_times["p90_ms"], "ms", "lower"),
    }
    names = [times.sides[base], times.sides[new]]
    paired = {
        "sides": names,
        "seed": times.seed,
        "samples": times.samples,
        "warmup_calls": times.warmup_calls,
        # Per pair, these two sides in the order they were called (0 = base, 1 = new).
        "order": [
            [0 if side == base else 1 for side in row if side in (base, new)]
            for row in times.order.reshape(-1, len(times.sides)).tolist()
        ],
        "times_ms": {
            names[0]: times.times_ms(base).tolist(),
            names[1]: times.times_ms(new).tolist(),
        },
        **compared,
    }
    return metrics, paired


def run_ab(cell: dict[str, Any]) -> dict[str, Any]:
    """``accelbench ab``: load BASE (the cell's model) and NEW together, time them in pairs, and
    return the result: metrics, the settings as run, and the raw pairs under
    ``settings.paired``."""
    from accelbench.records import artifact_info

    options = cell["settings"]["ab"]
    paths = {"base": Path(cell["model_path"]), "new": Path(options["new_path"])}
    inputs = {"base": options.get("base_inputs"), "new": options.get("new_inputs")}
    times, infos = _measure(
        cell,
        list(paths.values()),
        list(inputs.values()),
        list(paths),
        int(options["pairs"]),
        int(options["rounds"]),
    )
    artifacts = {side: artifact_info(path) for side, path in paths.items()}
    result = _ab_result(
        times,
        infos,
        {"artifacts": artifacts},
        {"new_model": str(paths["new"]), "new_inputs": inputs["new"] or "synthetic"},
    )
    return {**result, "artifact": artifacts["base"]}


def _ab_result(
    times: PairedTimes,
    infos: Sequence[dict[str, Any]],
    about_sides: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """An ``ab`` comparison of side 1 (new) against side 0 (base) as a worker result: metrics,
    the settings as run, and the raw pairs under ``settings.paired``."""
    metrics, paired = _comparison(times, 0, 1)
    runtimes = dict(zip(times.sides, infos, strict=True))
    paired = {**about_sides, "runtimes": runtimes, **paired}
    return {
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "runtime": infos[0],
        "settings": {
            "pairs": times.pairs,
            "rounds": times.rounds,
            "seed": times.seed,
            "confidence": paired["confidence"],
            **settings,
            "paired": paired,
        },
    }


class _PreparedRequests:
    """An endpoint as ``measure_pairs`` calls a runtime: ``run(sample)`` sends that sample's
    request, encoded once beforehand as the LoadGen HTTP SUT encodes it (encoding a request's
    JSON costs milliseconds, more than a small model's inference, and would dilute the ratio),
    and waits for the whole answer without decoding it."""

    def __init__(
        self, endpoint: Any, samples: Sequence[list[np.ndarray]], timeout_s: float, deadline: float
    ) -> None:
        endpoint.prepare(list(samples))
        self._endpoint = endpoint
        self._index = {id(sample): i for i, sample in enumerate(samples)}
        self._timeout_s, self._deadline = timeout_s, deadline

    def run(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        if time.monotonic() > self._deadline:
            raise TimeoutError(f"timed out after {self._timeout_s:g} s")
        self._endpoint.request(self._index[id(sample)])
        return []


def run_endpoints(
    endpoints: Sequence[Any],
    samples: Sequence[list[np.ndarray]],
    *,
    pairs: int,
    rounds: int,
    seed: int,
    timeout_s: float,
) -> dict[str, Any]:
    """``accelbench ab URL URL``: two HTTP endpoints (base, new: RemoteRuntime-like, with
    ``prepare``, ``request`` and ``info``) timed against each other in pairs of requests, one at
    a time, both sides of a pair sending the same sample; the result as ``run_ab`` gives it.

    A request that fails (an HTTP error, a refused connection) or a comparison that runs past
    ``timeout_s`` raises: the caller fails the comparison with the reason.
    """
    deadline = time.monotonic() + timeout_s
    sides = [_PreparedRequests(e, samples, timeout_s, deadline) for e in endpoints]
    times = measure_pairs(
        sides, [samples] * len(sides), pairs=pairs, rounds=rounds, seed=seed, sides=["base", "new"]
    )
    infos = [endpoint.info() for endpoint in endpoints]
    urls = {"base": infos[0]["url"], "new": infos[1]["url"]}
    return _ab_result(
        times,
        infos,
        {"endpoints": urls},
        {"new_url": urls["new"], "new_model": infos[1]["model"]},
    )


def run_optimizations(cell: dict[str, Any]) -> dict[str, Any]:
    """A suite's paired cell: every artifact of one model loaded in this worker and timed in
    pairs, each optimization against the base (fp32); one record per optimization.

    The cell's ``settings.paired_sides`` lists the sides that have an artifact (base first) and
    ``settings.paired_left_out`` why the others are left out; a left-out optimization gets a
    skipped record with that reason. The result's ``records`` are the per-optimization parts
    the sweep turns into records (``cell_id`` = the cell's id + '.' + the optimization).
    """
    from accelbench.records import artifact_info

    options = cell["settings"]["paired_options"]
    sides = cell["settings"]["paired_sides"]
    left_out = dict(cell["settings"].get("paired_left_out") or {})
    base = options["base"]
    parts = []
    if len(sides) >= 2 and sides[0]["optimization"] == base:
        names = [side["optimization"] for side in sides]
        paths = [Path(side["path"]) for side in sides]
        artifacts = [artifact_info(path) for path in paths]
        for new in range(1, len(sides)):
            # Two sides at a time, as ``ab`` measures: with several interpreters in one process,
            # their thread pools meet on the cores in patterns that depend on which side follows
            # which (at 2 threads one of seven sides ran 1.9x slower in every round, alone 1.5x
            # faster), so each optimization gets its own pairs with the base.
            times, infos = _measure(
                cell,
                [paths[0], paths[new]],
                [cell.get("inputs_path")] * 2,
                [names[0], names[new]],
                int(options["pairs"]),
                int(options["rounds"]),
            )
            metrics, paired = _comparison(times, 0, 1)
            paired["base"] = base
            paired["artifacts"] = {base: artifacts[0], names[new]: artifacts[new]}
            paired["threshold"] = DEFAULT_THRESHOLD
            paired["verdict"] = verdict(
                paired["ratio"],
                paired["ci_low"],
                paired["ci_high"],
                DEFAULT_THRESHOLD,
                round_range(paired),
            )
            parts.append(
                {
                    "key": names[new],
                    "optimization": names[new],
                    "status": "ok",
                    "error": None,
                    "metrics": metrics,
                    "artifact": artifacts[new],
                    "runtime": infos[1],
                    "settings": {
                        "pairs": times.pairs,
                        "rounds": times.rounds,
                        "confidence": paired["confidence"],
                        "paired_with": [names[0], names[new]],
                    },
                    "paired": paired,
                }
            )
    elif not sides or sides[0]["optimization"] != base:
        why = f"no {base} artifact to pair it with ({left_out.get(base, 'none was made')})"
        for name in options["optimizations"]:
            left_out.setdefault(name, why)
    for name in options["optimizations"]:
        if name in left_out:
            reason = left_out[name]
            parts.append({"key": name, "optimization": name, "status": "skipped", "error": reason})
    return {"status": "ok", "error": None, "metrics": {}, "records": parts}
