"""MLPerf LoadGen scenarios: a SUT and QSL around a runtime, LoadGen's settings, its logs parsed.

LoadGen generates the traffic, times every sample and judges the run; this module only hands it
a system under test and reads back what it wrote. The SUT never reads a clock.

Raw per-query latencies come from LoadGen itself: with ``LogSettings.enable_trace`` it writes a
"Sample" event per sample to ``mlperf_log_trace.json`` whose ``complete_ns`` is the latency LoadGen
counted (scheduled issue to ``QuerySamplesComplete``, on its own clock), so the raw list and
LoadGen's percentiles are the same numbers. Neither the detail log, the summary nor the accuracy
log holds them. The trace grows ~700 bytes a sample (hundreds of MB for a fast model's standard
run) and the rest of it is LoadGen-internal timing, so it is deleted once its latencies are read.
It also costs about 0.5% throughput, so the mlperf preset leaves it off and its results carry no
raw latencies (``latencies_source == "none"``).
"""

from __future__ import annotations

import json
import math
import queue
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import mlperf_loadgen as lg
import numpy as np

from accelbench.benchmarks.presets import (
    BATCHED_SCENARIOS,
    ScenarioPreset,
    check_scenario,
    comparable_to_mlperf,
    get_preset,
    mlperf_comparability,
)
from accelbench.errors import UsageError
from accelbench.records import metric

LOADGEN_SCENARIOS: dict[str, str] = {
    "single-stream": "SingleStream",
    "multi-stream": "MultiStream",
    "server": "Server",
    "offline": "Offline",
}
# Server traffic at half the calibrated single-sample rate: loaded enough to queue, light enough
# that a steady runtime meets a latency bound.
SERVER_LOAD_FRACTION = 0.5
# Offline pre-generates expected_qps x min_duration x 1.1 samples; overestimating the rate only
# lengthens the run, underestimating it ends the run before the minimum duration (INVALID).
OFFLINE_QPS_MARGIN = 1.25
# SingleStream's expected latency as a fraction of the calibrated p50 (see _apply_speed).
SINGLE_STREAM_GUESS = 0.5
# Offline calibration runs at most this many short runs to find a batched rate (see _calibrate).
OFFLINE_CALIBRATION_RUNS = 5
# LoadGen's percentiles, as (metric suffix, percent); p97 is LoadGen's too.
LOADGEN_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p97", 97.0),
    ("p99", 99.0),
    ("p999", 99.9),
)
CRITERIA_KEYS: dict[str, str] = {
    "result_min_duration_met": "min_duration_satisfied",
    "result_min_queries_met": "min_queries_satisfied",
    "early_stopping_met": "early_stopping_satisfied",
    "result_perf_constraints_met": "performance_constraints_satisfied",
}
LOG_PREFIX = "mlperf_log_"
# LoadGen keeps global state (its logger, the issue thread): one test at a time per process.
_LOADGEN_LOCK = threading.Lock()


class SupportsRun(Protocol):
    """The part of accelbench.runtimes.base.Runtime a scenario uses: run(), and optionally
    max_batch_size (the model's fixed batch dimension; None or absent: a dynamic batch, one
    sample per call unless a batch_size is asked for) and set_batch_size(n)."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


class SupportsSubmit(Protocol):
    """An asynchronous system under test (a remote endpoint): requests go out without waiting.

    prepare(samples) is called before each LoadGen test with the QSL (the runtime may pre-encode
    each sample once); submit(requests, done) takes (sample index, token) pairs, returns at once,
    and calls done(token) exactly once per pair, from any thread, when that sample's answer (or
    its error) is in. Such a runtime counts its own errors; LoadGen only sees completions.
    """

    def prepare(self, samples: list[list[np.ndarray]]) -> None: ...

    def submit(self, requests: list[tuple[int, int]], done: Callable[[int], None]) -> None: ...


@dataclass
class ScenarioResult:
    """One LoadGen run, as LoadGen reported it.

    metrics (each a records.metric triple) use LoadGen's numbers, in ms where LoadGen says ns:
    latency_p50/p90/p95/p97/p99/p999/mean/min/max_ms (per query for multi-stream, as LoadGen
    reports it, else per sample); qps = LoadGen's throughput for the scenario (single-stream: QPS
    with LoadGen overhead; server: completed samples/s; offline: samples/s; multi-stream: none);
    qps_without_loadgen_overhead (single-stream); scheduled_qps and overlatency_query_count
    (server); early_stopping_pNN_ms where LoadGen estimated one; query_count; sample_count;
    duration_s (LoadGen's span from first issue to last completion).
    """

    scenario: str
    preset: str
    valid: bool
    result_validity: str
    criteria: dict[str, bool]
    metrics: dict[str, dict[str, Any]]
    latencies_ms: list[float]
    latencies_source: str
    settings: dict[str, Any]
    # Never True from accelbench alone (no reference data set, no accuracy run): see
    # presets.mlperf_comparability; official_loadgen_rules is the part a run can meet.
    comparable_to_mlperf: bool
    early_stopping: dict[str, Any]
    log_files: dict[str, str]
    invalid_reason: str = ""
    loadgen_messages: list[str] = field(default_factory=list)
    official_loadgen_rules: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Batching:
    """How the SUT groups samples into runtime calls: at most ``size`` samples per call, each
    call padded up to the smallest of ``shapes`` (batch sizes) that holds them.

    ``fixed``: the model's batch dimension is fixed, so ``shapes`` is just that size.
    """

    size: int
    fixed: bool
    shapes: tuple[int, ...]

    @classmethod
    def of(cls, size: int, fixed: bool) -> Batching:
        """A fixed batch: that size only. A dynamic one: the powers of two below ``size``, and
        ``size``. A runtime may pay for every new batch shape (JAX compiles each one, ~1 s on a
        GPU; LiteRT reallocates its tensors), and unpadded calls would meet many shapes: one
        per partial batch. Padding to at most twice the samples bounds them to log2(size) + 1
        shapes, all compiled before the measurement (`_warm_up`); padded rows are counted."""
        if fixed or size == 1:
            return cls(size, fixed, (size,))
        powers = tuple(1 << i for i in range(size.bit_length()) if 1 << i < size)
        return cls(size, fixed, (*powers, size))

    def rows_for(self, samples: int) -> int:
        """The batch size a call of ``samples`` samples is padded to."""
        return next(shape for shape in self.shapes if shape >= samples)


def sut_batching(runtime: SupportsRun, scenario: str, batch_size: int | None = None) -> Batching:
    """The batching a scenario runs ``runtime`` with, ``batch_size`` samples per call asked for.

    A fixed batch dimension B is always B rows per call (padded), and refuses another
    batch_size. A dynamic batch takes one sample per call unless ``batch_size`` is given (offline
    and server only): then up to that many queued samples per call, padded to a power of two
    (see `Batching.of`), after ``runtime.set_batch_size(batch_size)`` where the runtime has it.
    UsageError, naming the fix, for an impossible batch size.
    """
    value = getattr(runtime, "max_batch_size", None)
    if value is not None and (not isinstance(value, int | np.integer) or value < 1):
        raise ValueError(
            f"runtime.max_batch_size must be a positive integer or None, not {value!r}"
        )
    fixed = None if value is None else int(value)
    if batch_size is None:
        return Batching.of(fixed or 1, fixed is not None)
    if scenario not in BATCHED_SCENARIOS:
        raise UsageError(
            f"batch_size applies to the offline and server scenarios, not {scenario} (one sample "
            "per query, as MLPerf defines it); drop it"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if _is_async(runtime):
        raise UsageError(
            "batch_size applies to a runtime in this process; a remote endpoint batches on its "
            "server (accelbench serve --max-batch-size); drop it"
        )
    if fixed is not None and batch_size != fixed:
        raise UsageError(
            f"the model's batch dimension is fixed to {fixed}, so batch size {batch_size} is "
            f"impossible; use batch size {fixed} (or none), or a model with a dynamic batch "
            "dimension"
        )
    set_batch_size = getattr(runtime, "set_batch_size", None)
    if callable(set_batch_size):
        try:
            set_batch_size(batch_size)
        except ValueError as err:
            raise UsageError(str(err)) from err
    return Batching.of(batch_size, fixed is not None)


@dataclass
class DetailLog:
    """The ":::MLLOG" entries of mlperf_log_detail.txt: values by key, and LoadGen's messages."""

    values: dict[str, Any]
    errors: list[str]
    warnings: list[str]
    messages: list[str]


def run_scenario(
    runtime: SupportsRun,
    samples: Sequence[list[np.ndarray]],
    scenario: str,
    preset: str,
    log_dir: Path,
    *,
    target_qps: float | None = None,
    target_latency_ms: float | None = None,
    samples_per_query: int | None = None,
    max_duration_s: float | None = None,
    batch_size: int | None = None,
) -> ScenarioResult:
    """Run one LoadGen scenario (PerformanceOnly) against `runtime` and return LoadGen's verdict.

    samples: the QSL, each a list of input arrays with batch 1. target_qps: server target QPS or
    offline expected QPS (calibrated when omitted). target_latency_ms: the server latency bound
    (LoadGen's rule when omitted). samples_per_query: multi-stream only. max_duration_s caps the
    run. batch_size (offline and server only): up to that many queued samples per runtime call
    for a model with a dynamic batch dimension (default: one; see `sut_batching`). LoadGen's logs
    (and a calibration/ subfolder when a speed had to be measured) go to log_dir. A runtime that
    raises fails the run with its own exception once LoadGen has finished.
    """
    check_scenario(scenario)
    chosen = get_preset(preset, scenario)
    _check_options(scenario, target_qps, target_latency_ms, samples_per_query, max_duration_s)
    samples = list(samples)
    if not samples:
        raise UsageError("samples is empty; give at least one sample (a list of input arrays)")
    if not isinstance(samples[0], list | tuple):
        raise UsageError(
            f"each sample must be a list of input arrays, got {type(samples[0]).__name__}; "
            "wrap a single-input sample as [array]"
        )
    batching = sut_batching(runtime, scenario, batch_size)
    log_dir = Path(log_dir)
    warmed = _warm_up(runtime, samples, batching)

    settings = _base_settings(scenario)
    rule_samples_per_query = settings.multi_stream_samples_per_query
    _apply_preset(settings, chosen, samples_per_query, target_latency_ms, max_duration_s)
    derived: dict[str, str] = {}
    calibration = None
    if scenario in ("single-stream", "multi-stream") or target_qps is None:
        calibration = _calibrate(runtime, samples, chosen, batching, log_dir / "calibration")
    _apply_speed(settings, scenario, target_qps, batching.size, calibration, derived)

    threaded = scenario in ("server", "offline")
    for attempt in (1, 2):
        with _LOADGEN_LOCK:
            sut_counts = _run_loadgen(
                runtime, samples, settings, log_dir, chosen.loadgen_trace, batching, threaded
            )
        detail = parse_detail_log(log_dir / f"{LOG_PREFIX}detail.txt")
        values = detail.values
        if "result_validity" not in values:
            raise RuntimeError(f"LoadGen wrote no result to {log_dir}; see {LOG_PREFIX}detail.txt")
        if attempt == 2 or not _offline_ran_short(scenario, target_qps, values):
            break
        # The calibration guessed the rate low (the machine got faster, or batching pays): the
        # pre-generated samples ran out before the minimum duration. Once more, at the rate seen.
        seen = float(values["result_samples_per_second"])
        settings.offline_expected_qps = OFFLINE_QPS_MARGIN * seen
        derived["offline_expected_qps"] = (
            f"rerun at {OFFLINE_QPS_MARGIN} x the first run's {seen:.6g} samples/s: the "
            f"calibrated rate ended that run before the minimum duration"
        )

    latencies_ns: list[int] = []
    trace_path = log_dir / f"{LOG_PREFIX}trace.json"
    if chosen.loadgen_trace:
        latencies_ns = read_trace_latencies_ns(trace_path, per_query=scenario == "multi-stream")
    trace_path.unlink(missing_ok=True)  # read (or empty): see the module docstring
    criteria = {name: bool(values[key]) for key, name in CRITERIA_KEYS.items() if key in values}
    valid = values["result_validity"] == "VALID"
    early_stopping = _early_stopping(scenario, values)
    official = (
        chosen.official_loadgen_rules
        and max_duration_s is None
        and samples_per_query in (None, rule_samples_per_query)
    )
    return ScenarioResult(
        scenario=scenario,
        preset=chosen.name,
        valid=valid,
        result_validity=str(values["result_validity"]),
        criteria=criteria,
        metrics=_metrics(scenario, values, early_stopping),
        latencies_ms=[ns / 1e6 for ns in latencies_ns],
        latencies_source="loadgen_trace" if chosen.loadgen_trace else "none",
        settings={
            "loadgen": settings_dict(settings),
            "effective": {
                key.removeprefix("effective_"): value
                for key, value in values.items()
                if key.startswith("effective_")
            },
            "derived": derived,
            "calibration": calibration,
            "preset": chosen.to_dict(),
            "sut": {
                "batch_size": batching.size,
                "fixed_batch": batching.fixed,
                "batch_shapes": list(batching.shapes),
                "warm_up_calls": warmed,
                "worker_thread": threaded,
                "asynchronous": _is_async(runtime),
                **sut_counts,
            },
            "qsl": {"total_sample_count": len(samples), "performance_sample_count": len(samples)},
            "log": {"enable_trace": chosen.loadgen_trace, "outdir": str(log_dir)},
            "loadgen_version": values.get("loadgen_version"),
        },
        comparable_to_mlperf=comparable_to_mlperf(
            mlperf_comparability(official, len(samples), None)
        ),
        early_stopping=early_stopping,
        log_files=_log_files(log_dir),
        invalid_reason=_invalid_reason(valid, values, criteria),
        loadgen_messages=[
            *detail.messages,
            *(f"warning: {w}" for w in detail.warnings),
            *(f"error: {e}" for e in detail.errors),
        ],
        official_loadgen_rules=official,
    )


def _check_options(
    scenario: str,
    target_qps: float | None,
    target_latency_ms: float | None,
    samples_per_query: int | None,
    max_duration_s: float | None,
) -> None:
    if target_qps is not None:
        if scenario not in ("server", "offline"):
            raise UsageError(
                f"target_qps applies to the server and offline scenarios, not {scenario}; drop it"
            )
        if not target_qps > 0:
            raise UsageError(f"target_qps must be a positive number of queries/s, not {target_qps}")
    if target_latency_ms is not None:
        if scenario != "server":
            raise UsageError(
                f"target_latency_ms is the server scenario's latency bound, not {scenario}'s; "
                "drop it"
            )
        if not target_latency_ms > 0:
            raise UsageError(f"target_latency_ms must be positive, not {target_latency_ms}")
    if samples_per_query is not None:
        if scenario != "multi-stream":
            raise UsageError(
                f"samples_per_query applies to the multi-stream scenario, not {scenario}; drop it"
            )
        if not (isinstance(samples_per_query, int) and samples_per_query >= 1):
            raise UsageError(
                f"samples_per_query must be a positive integer, not {samples_per_query!r}"
            )
    if max_duration_s is not None and not max_duration_s > 0:
        raise UsageError(
            f"max_duration_s must be a positive number of seconds, not {max_duration_s}"
        )


def _base_settings(scenario: str) -> lg.TestSettings:
    """TestSettings holding the installed LoadGen's own rules for this scenario."""
    settings = lg.TestSettings()
    # conf_type 0 reads only the mlperf.conf compiled into LoadGen (no user.conf, so the path is
    # unused); model "*" takes the rules that apply to every model.
    if settings.FromConfig("", "*", LOADGEN_SCENARIOS[scenario], 0) != 0:
        raise RuntimeError(f"LoadGen could not load its built-in rules for {scenario}")
    settings.scenario = getattr(lg.TestScenario, LOADGEN_SCENARIOS[scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    return settings


def _apply_preset(
    settings: lg.TestSettings,
    preset: ScenarioPreset,
    samples_per_query: int | None,
    target_latency_ms: float | None,
    max_duration_s: float | None,
) -> None:
    if preset.min_duration_ms is not None:
        settings.min_duration_ms = preset.min_duration_ms
    if preset.min_query_count is not None:
        settings.min_query_count = preset.min_query_count
    settings.max_duration_ms = preset.max_duration_ms
    if max_duration_s is not None:
        settings.max_duration_ms = max(1, round(max_duration_s * 1000))
    if samples_per_query is not None:
        settings.multi_stream_samples_per_query = samples_per_query
    if target_latency_ms is not None:
        settings.server_target_latency_ns = max(1, round(target_latency_ms * 1e6))


def _offline_ran_short(scenario: str, target_qps: float | None, values: dict[str, Any]) -> bool:
    """An Offline run with a calibrated rate that failed only its minimum duration."""
    if scenario != "offline" or target_qps is not None or values["result_validity"] == "VALID":
        return False
    failed = [k for k in CRITERIA_KEYS if k in values and not bool(values[k])]
    return failed == ["result_min_duration_met"] and "result_samples_per_second" in values


def _calibrate(
    runtime: SupportsRun,
    samples: list[list[np.ndarray]],
    preset: ScenarioPreset,
    batching: Batching,
    log_dir: Path,
) -> dict[str, Any]:
    """Measure the runtime's speed with short LoadGen runs; their logs stay in log_dir.

    One sample per query (single-stream), and for offline with batches of more than one sample,
    a short offline run at that batching: its samples/s sizes the real run."""
    settings = _base_settings("single-stream")
    settings.min_duration_ms = preset.calibration_ms
    settings.min_query_count = 1
    # LoadGen pre-generates 2 x duration / expected latency queries; a small guess leaves plenty.
    settings.single_stream_expected_latency_ns = 100_000
    with _LOADGEN_LOCK:
        _run_loadgen(runtime, samples, settings, log_dir / "single-stream", False, batching, False)
    values = parse_detail_log(log_dir / "single-stream" / f"{LOG_PREFIX}detail.txt").values
    # The median, not the mean: the first inferences of a fresh runtime are often slow.
    p50_ns = int(values["result_50.00_percentile_latency_ns"])
    result: dict[str, Any] = {
        "log_dir": str(log_dir),
        "duration_ms": preset.calibration_ms,
        "single_stream_query_count": int(values["result_query_count"]),
        "single_stream_p50_latency_ms": p50_ns / 1e6,
        "single_stream_samples_per_second": 1e9 / max(p50_ns, 1),
    }
    if preset.scenario == "offline" and batching.size > 1:
        result.update(_calibrate_offline(runtime, samples, preset, batching, log_dir, result))
    return result


def _calibrate_offline(
    runtime: SupportsRun,
    samples: list[list[np.ndarray]],
    preset: ScenarioPreset,
    batching: Batching,
    log_dir: Path,
    single_stream: dict[str, Any],
) -> dict[str, Any]:
    """The batched Offline rate, from short Offline runs of growing size.

    What a batch gains is unknown until measured (a GPU's batch of 4096 can take as long as one
    sample), and Offline pre-generates expected rate x duration samples: a guess of the
    single-stream rate x the batch size can last hundreds of times the calibration's duration.
    So the first run guesses the single-stream rate (it can only end early), and each run that
    ends before half the duration guesses the rate it saw, until one lasts long enough.
    """
    target_s = preset.calibration_ms / 1e3
    guess = single_stream["single_stream_samples_per_second"]
    for runs in range(1, OFFLINE_CALIBRATION_RUNS + 1):  # noqa: B007 - the count is returned
        settings = _base_settings("offline")
        settings.min_duration_ms = preset.calibration_ms
        settings.min_query_count = 1
        settings.offline_expected_qps = guess
        with _LOADGEN_LOCK:
            _run_loadgen(runtime, samples, settings, log_dir / "offline", False, batching, True)
        values = parse_detail_log(log_dir / "offline" / f"{LOG_PREFIX}detail.txt").values
        rate = float(values["result_samples_per_second"])
        seconds = int(values["generated_samples_per_query"]) / max(rate, 1e-9)
        if seconds >= target_s / 2:
            break
        guess = max(rate, guess)
    return {"offline_samples_per_second": rate, "offline_calibration_runs": runs}


def _apply_speed(
    settings: lg.TestSettings,
    scenario: str,
    target_qps: float | None,
    max_batch: int,
    calibration: dict[str, Any] | None,
    derived: dict[str, str],
) -> None:
    """Set the speed-dependent settings from the user's numbers or the calibration."""
    if calibration is not None:
        p50_ns = calibration["single_stream_p50_latency_ms"] * 1e6
        single_rate = calibration["single_stream_samples_per_second"]
    if scenario == "single-stream":
        # LoadGen pre-generates queries for about twice the minimum duration at this latency and
        # stops once its minimums are met: guessing low only generates more. A machine that got
        # faster after the calibration (2x seen on shared VMs) must not run out of queries.
        settings.single_stream_expected_latency_ns = max(1, round(p50_ns * SINGLE_STREAM_GUESS))
        derived["single_stream_expected_latency_ns"] = (
            f"calibrated single-sample p50 latency x {SINGLE_STREAM_GUESS}"
        )
    elif scenario == "multi-stream":
        # A whole query costs at least one batch per max_batch samples; guessing low only makes
        # LoadGen pre-generate more queries than it will issue.
        batches = math.ceil(settings.multi_stream_samples_per_query / max_batch)
        settings.multi_stream_expected_latency_ns = max(1, round(p50_ns * batches))
        derived["multi_stream_expected_latency_ns"] = (
            f"calibrated single-sample p50 latency x {batches} batch(es) per query"
        )
    elif scenario == "server":
        if target_qps is not None:
            settings.server_target_qps = float(target_qps)
            derived["server_target_qps"] = "given"
        else:
            settings.server_target_qps = SERVER_LOAD_FRACTION * single_rate
            derived["server_target_qps"] = (
                f"calibrated: {SERVER_LOAD_FRACTION} x single-stream samples/s "
                f"({single_rate:.6g}, from the p50 latency)"
            )
    elif target_qps is not None:
        settings.offline_expected_qps = float(target_qps)
        derived["offline_expected_qps"] = "given"
    else:
        measured = calibration.get("offline_samples_per_second", single_rate)
        source = (
            "offline calibration samples/s"
            if "offline_samples_per_second" in calibration
            else "single-stream samples/s (runtime has no batching)"
        )
        settings.offline_expected_qps = OFFLINE_QPS_MARGIN * measured
        derived["offline_expected_qps"] = (
            f"calibrated: {OFFLINE_QPS_MARGIN} x {source} ({measured:.6g})"
        )


def _run_loadgen(
    runtime: SupportsRun,
    samples: list[list[np.ndarray]],
    settings: lg.TestSettings,
    log_dir: Path,
    trace: bool,
    batching: Batching,
    threaded: bool,
) -> dict[str, Any]:
    """One LoadGen test, SUT and QSL constructed and destroyed around it; returns the SUT's
    counts (padded_rows, runtime_calls, samples_per_call)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    output = lg.LogOutputSettings()
    output.outdir = str(log_dir)
    output.prefix = LOG_PREFIX
    output.copy_summary_to_stdout = False
    output.copy_detail_to_stdout = False
    output.prefix_with_datetime = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = trace

    system: _SystemUnderTest | _AsyncSystemUnderTest
    if _is_async(runtime):
        system = _AsyncSystemUnderTest(runtime, samples)  # type: ignore[arg-type]
    else:
        system = _SystemUnderTest(runtime, samples, batching, threaded)
    sut = lg.ConstructSUT(system.issue_queries, system.flush_queries)
    # The samples are already in memory, so loading and unloading them is a no-op.
    qsl = lg.ConstructQSL(len(samples), len(samples), _no_op, _no_op)
    try:
        # LoadGen applies an audit.config found in the working directory (compliance tests);
        # name one that cannot exist so a stray file never changes the settings.
        lg.StartTestWithLogSettings(
            sut, qsl, settings, log_settings, str(log_dir / "no-audit.config")
        )
    finally:
        system.close()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if system.error is not None:
        raise system.error
    return system.counts()


def _no_op(_sample_indices: list[int]) -> None:
    return None


def _is_async(runtime: object) -> bool:
    return callable(getattr(runtime, "submit", None))


class _AsyncSystemUnderTest:
    """Hands LoadGen's samples to an asynchronous runtime (SupportsSubmit) and returns at once.

    Each sample completes when the runtime calls back with its token (LoadGen's query id), from
    the runtime's own thread; the response carries no output bytes, which performance mode never
    reads.
    """

    def __init__(self, runtime: SupportsSubmit, samples: list[list[np.ndarray]]) -> None:
        self._runtime = runtime
        runtime.prepare(samples)
        self.error: BaseException | None = None

    def counts(self) -> dict[str, Any]:
        # The runtime sends its requests itself: there are no calls here to count.
        return {"padded_rows": 0, "runtime_calls": None, "samples_per_call": None}

    def issue_queries(self, query_samples: list[Any]) -> None:
        self._runtime.submit([(s.index, s.id) for s in query_samples], self._complete)

    def flush_queries(self) -> None:
        return None

    def close(self) -> None:
        return None

    @staticmethod
    def _complete(query_id: int) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])


class _SystemUnderTest:
    """Feeds LoadGen's samples to the runtime and hands each sample's output bytes back.

    Single-stream and multi-stream run inline in LoadGen's issue call (LoadGen waits for each
    query anyway); server and offline go through one worker thread so the issue call returns at
    once. The worker takes up to ``batching.size`` queued samples per runtime call, stacked on
    axis 0, padded to the batching's next shape (`Batching.rows_for`: a fixed batch dimension
    exactly, a dynamic one the next power of two) with copies of its last sample, whose outputs
    are dropped (counted in padded_rows). A runtime error is kept, the remaining samples complete
    empty so LoadGen can finish, and the error is raised after the test.
    """

    def __init__(
        self,
        runtime: SupportsRun,
        samples: list[list[np.ndarray]],
        batching: Batching,
        threaded: bool,
    ) -> None:
        self._runtime = runtime
        self._samples = samples
        self._batching = batching
        # Every input of every sample, stacked once: a batch is then one gather per input
        # rather than a concatenation of many small arrays per call.
        self._stacked = _stack_samples(samples) if batching.size > 1 else None
        self.padded_rows = 0
        self.runtime_calls = 0
        self.samples_run = 0
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] | None = None
        self._worker: threading.Thread | None = None
        if threaded:
            self._queue = queue.SimpleQueue()
            self._worker = threading.Thread(target=self._serve, name="accelbench-sut", daemon=True)
            self._worker.start()

    def counts(self) -> dict[str, Any]:
        calls = self.runtime_calls
        return {
            "padded_rows": self.padded_rows,
            "runtime_calls": calls,
            "samples_per_call": self.samples_run / calls if calls else None,
        }

    def issue_queries(self, query_samples: list[Any]) -> None:
        if self._queue is None:
            for start in range(0, len(query_samples), self._batching.size):
                self._complete(query_samples[start : start + self._batching.size])
            return
        # In slices of at most one batch: Offline issues every sample in one query, and one
        # queue operation per sample would cost more than a fast accelerator's inference.
        for start in range(0, len(query_samples), self._batching.size):
            self._queue.put(query_samples[start : start + self._batching.size])

    def flush_queries(self) -> None:
        # Nothing is held back waiting for a fuller batch, so there is nothing to flush.
        return None

    def close(self) -> None:
        if self._worker is not None and self._queue is not None:
            self._queue.put(None)
            self._worker.join()

    def _serve(self) -> None:
        """Run what is queued, up to one batch per call, until close() queues None."""
        assert self._queue is not None
        pending: list[Any] = []
        while True:
            if not pending:
                first = self._queue.get()
                if first is None:
                    return
                pending = list(first)
            while len(pending) < self._batching.size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop once what is pending has run
                    break
                pending.extend(more)
            batch, pending = pending[: self._batching.size], pending[self._batching.size :]
            self._complete(batch)

    def _complete(self, batch: list[Any]) -> None:
        pointers: list[tuple[int, int]] = []
        keep_alive: Any = None
        if self.error is None:
            try:
                pointers, keep_alive = self._infer(batch)
            except Exception as exc:  # raised again after the test, when LoadGen has finished
                self.error = exc
        if self.error is None:
            responses = [
                lg.QuerySampleResponse(sample.id, address, nbytes)
                for sample, (address, nbytes) in zip(batch, pointers, strict=True)
            ]
        else:
            responses = [lg.QuerySampleResponse(sample.id, 0, 0) for sample in batch]
        # The outputs (`keep_alive`) stay referenced until LoadGen has read the responses.
        lg.QuerySamplesComplete(responses)
        del keep_alive

    def _infer(self, batch: list[Any]) -> tuple[list[tuple[int, int]], Any]:
        indices = [sample.index for sample in batch]
        rows = self._batching.rows_for(len(indices))
        if rows > len(indices):
            self.padded_rows += rows - len(indices)
            indices += [indices[-1]] * (rows - len(indices))
        inputs = _batch_inputs(self._samples, self._stacked, indices)
        outputs = [np.asarray(output) for output in self._runtime.run(inputs)]
        self.runtime_calls += 1
        self.samples_run += len(batch)
        return _response_pointers(outputs, len(indices), keep=len(batch))


def _warm_up(runtime: SupportsRun, samples: list[list[np.ndarray]], batching: Batching) -> int:
    """Run each batch shape of a dynamic batching once, before LoadGen measures anything, so
    that a runtime that compiles per shape (JAX) does it here rather than in a timed query, as
    MLPerf allows a SUT to warm up; returns the calls made (none for a fixed or unit batch)."""
    if batching.fixed or batching.size == 1:
        return 0
    stacked = _stack_samples(samples)
    for rows in batching.shapes:
        runtime.run(_batch_inputs(samples, stacked, [i % len(samples) for i in range(rows)]))
    return len(batching.shapes)


def _batch_inputs(
    samples: list[list[np.ndarray]], stacked: list[np.ndarray] | None, indices: list[int]
) -> list[np.ndarray]:
    """The inputs of one call: the samples at ``indices``, stacked on axis 0."""
    if len(indices) == 1:
        return samples[indices[0]]
    if stacked is not None:
        return [inputs[indices] for inputs in stacked]
    rows = [samples[i] for i in indices]
    return [np.concatenate(arrays, axis=0) for arrays in zip(*rows, strict=True)]


def _stack_samples(samples: list[list[np.ndarray]]) -> list[np.ndarray] | None:
    """Each input of all samples as one array (sample i is row i), or None when the samples'
    shapes or dtypes differ or a sample is not one row."""
    try:
        stacked = [np.concatenate(arrays, axis=0) for arrays in zip(*samples, strict=True)]
    except ValueError:
        return None
    return stacked if all(len(a) == len(samples) for a in stacked) else None


def _response_pointers(
    outputs: list[np.ndarray], rows: int, keep: int
) -> tuple[list[tuple[int, int]], Any]:
    """Per kept sample, (address, bytes) of its row of every output as one contiguous buffer
    (LoadGen's response), and what must stay alive until LoadGen has read them."""
    for output in outputs:
        if output.ndim == 0 or output.shape[0] != rows:
            raise ValueError(
                f"the runtime returned an output of shape {list(output.shape)} for a batch of "
                f"{rows}; outputs must keep the batch as their first dimension"
            )
    if len(outputs) == 1:
        # One output: its rows already are the buffers; no copy, no object per sample.
        output = np.ascontiguousarray(outputs[0])
        row_bytes = output.nbytes // rows
        base = output.ctypes.data
        return [(base + i * row_bytes, row_bytes) for i in range(keep)], output
    buffers = [
        np.concatenate(
            [
                np.ascontiguousarray(output[i : i + 1]).reshape(-1).view(np.uint8)
                for output in outputs
            ]
        )
        for i in range(keep)
    ]
    return [(buffer.ctypes.data, buffer.nbytes) for buffer in buffers], buffers


def settings_dict(settings: lg.TestSettings) -> dict[str, Any]:
    """Every field of a LoadGen TestSettings, enums by name, as plain values for a record."""
    result: dict[str, Any] = {}
    for name in dir(settings):
        if name.startswith("_"):
            continue
        value = getattr(settings, name)
        if callable(value) and not hasattr(value, "name"):
            continue
        result[name] = value.name if hasattr(value, "name") else value
    return result


def parse_detail_log(path: Path) -> DetailLog:
    """Read LoadGen's mlperf_log_detail.txt (one ':::MLLOG {json}' entry per line)."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    warnings: list[str] = []
    messages: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            _, marker, payload = line.partition(":::MLLOG")
            if not marker:
                continue
            try:
                entry = json.loads(payload)
            except json.JSONDecodeError:
                continue  # LoadGen never writes a partial entry, but a killed run could
            key, value = entry.get("key"), entry.get("value")
            metadata = entry.get("metadata") or {}
            if metadata.get("is_error"):
                errors.append(f"{key}: {value}")
            elif metadata.get("is_warning"):
                warnings.append(f"{key}: {value}")
            if key == "generic_message":
                messages.append(str(value))
            else:
                values[key] = value
    return DetailLog(values=values, errors=errors, warnings=warnings, messages=messages)


# One trace line per event; the sample's begin event carries LoadGen's latency for it. The file is
# not valid JSON as a whole (LoadGen writes some detail keys with doubled quotes), so read by line.
_TRACE_SAMPLE = re.compile(r'"name":"Sample".*?"ph":"b".*?"query_seq":(\d+).*?"complete_ns":(\d+)')


def read_trace_latencies_ns(path: Path, per_query: bool = False) -> list[int]:
    """LoadGen's latency of every sample (ns) from its trace, in issue order.

    per_query=True gives one latency per query instead, the completion of its last sample, as
    LoadGen defines a MultiStream query's latency.
    """
    per_sample: list[int] = []
    per_query_ns: dict[int, int] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"name":"Sample"' not in line:
                continue
            match = _TRACE_SAMPLE.search(line)
            if match is None:
                continue
            query_seq, complete_ns = int(match.group(1)), int(match.group(2))
            if per_query:
                per_query_ns[query_seq] = max(per_query_ns.get(query_seq, 0), complete_ns)
            else:
                per_sample.append(complete_ns)
    return list(per_query_ns.values()) if per_query else per_sample


def _percentile_name(percent: float) -> str:
    return "p" + f"{round(percent, 3):g}".replace(".", "")


def _early_stopping(scenario: str, values: dict[str, Any]) -> dict[str, Any]:
    """LoadGen's early-stopping verdict, its text and its latency estimates (ms) by percentile."""
    estimates: dict[str, float] = {}
    target = float(values.get("effective_target_latency_percentile", 0.0)) * 100
    if scenario == "single-stream":
        # early_stopping_latency_ss is at the target percentile; early_stopping_latency_ms is
        # LoadGen's fixed 99th-percentile estimate (for inferring MultiStream from SingleStream).
        pairs = [("early_stopping_latency_ss", target), ("early_stopping_latency_ms", 99.0)]
    elif scenario == "multi-stream":
        pairs = [("early_stopping_latency_ms", target)]
    else:
        pairs = []
    for key, percent in pairs:
        ns = values.get(key)
        if ns:  # LoadGen logs 0 when it had too few queries for an estimate
            estimates[_percentile_name(percent)] = ns / 1e6
    text = " ".join(str(values.get("early_stopping_result", "")).split())
    return {
        "satisfied": values.get("early_stopping_met"),
        "result": text,
        "estimates_ms": estimates,
    }


def _metrics(
    scenario: str, values: dict[str, Any], early_stopping: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    # LoadGen's MultiStream metric is the query latency; its per-sample numbers are secondary.
    infix = "query_" if scenario == "multi-stream" else ""
    percentile_key = (
        "result_{:.2f}_percentile_per_query_latency_ns"
        if scenario == "multi-stream"
        else "result_{:.2f}_percentile_latency_ns"
    )
    for name, percent in LOADGEN_PERCENTILES:
        ns = values.get(percentile_key.format(percent))
        if ns is not None:
            metrics[f"latency_{name}_ms"] = metric(ns / 1e6, "ms", "lower")
    for name in ("mean", "min", "max"):
        ns = values.get(f"result_{name}_{infix}latency_ns")
        if ns is not None:
            metrics[f"latency_{name}_ms"] = metric(ns / 1e6, "ms", "lower")

    throughput = {
        "single-stream": [
            ("qps", "result_qps_with_loadgen_overhead", "queries/s"),
            ("qps_without_loadgen_overhead", "result_qps_without_loadgen_overhead", "queries/s"),
        ],
        "server": [
            ("qps", "result_completed_samples_per_sec", "queries/s"),
            ("scheduled_qps", "result_scheduled_samples_per_sec", "queries/s"),
        ],
        "offline": [("qps", "result_samples_per_second", "samples/s")],
        "multi-stream": [],
    }[scenario]
    for name, key, unit in throughput:
        if values.get(key) is not None:
            metrics[name] = metric(values[key], unit, "higher")
    if "result_overlatency_query_count" in values:
        metrics["overlatency_query_count"] = metric(
            int(values["result_overlatency_query_count"]), "queries", "lower"
        )
    for name, ms in early_stopping["estimates_ms"].items():
        metrics[f"early_stopping_{name}_ms"] = metric(ms, "ms", "lower")

    query_count = int(values.get("result_query_count", 0))
    metrics["query_count"] = metric(query_count, "queries", "none")
    samples_per_query = int(values.get("effective_samples_per_query", 1))
    metrics["sample_count"] = metric(query_count * samples_per_query, "samples", "none")
    duration_s = _power_span_s(values)
    if duration_s is not None:
        metrics["duration_s"] = metric(duration_s, "s", "none")
    return metrics


def _power_span_s(values: dict[str, Any]) -> float | None:
    """LoadGen's span from its first issue to the last completion, from its power_begin/end entries.

    LoadGen logs no duration as such; these two timestamps (millisecond resolution) bound exactly
    the interval it measured the run over.
    """
    try:
        begin, end = (
            datetime.strptime(str(values[key]), "%m-%d-%Y %H:%M:%S.%f")
            for key in ("power_begin", "power_end")
        )
    except (KeyError, ValueError):
        return None
    return (end - begin).total_seconds()


def _invalid_reason(valid: bool, values: dict[str, Any], criteria: dict[str, bool]) -> str:
    if valid:
        return ""
    reason = " ".join(str(values.get("result_invalid_reason", "")).split())
    failed = [name for name, ok in criteria.items() if not ok]
    if failed:
        reason = (reason + " " if reason else "") + "Failed: " + ", ".join(failed) + "."
    return reason


def _log_files(log_dir: Path) -> dict[str, str]:
    names = {"summary": "summary.txt", "detail": "detail.txt", "accuracy": "accuracy.json"}
    return {kind: str(log_dir / f"{LOG_PREFIX}{name}") for kind, name in names.items()}
