"""LoadGen's TestSettings for a scenario: its built-in rules, the preset's and the caller's
settings on top, and the speed-dependent ones from the caller's numbers or from short calibration
runs of the runtime."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg
import numpy as np

from accelbench.benchmarks.loadgen.logs import LOG_PREFIX, parse_detail_log
from accelbench.benchmarks.loadgen.sut import Batching, SupportsRun, run_test
from accelbench.benchmarks.presets import ScenarioPreset
from accelbench.errors import UsageError

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
# SingleStream's expected latency as a fraction of the calibrated p50 (see apply_speed).
SINGLE_STREAM_GUESS = 0.5
# Offline calibration runs at most this many short runs to find a batched rate (see calibrate).
OFFLINE_CALIBRATION_RUNS = 5


def check_options(
    scenario: str,
    target_qps: float | None,
    target_latency_ms: float | None,
    samples_per_query: int | None,
    max_duration_s: float | None,
) -> None:
    """UsageError, naming the fix, for an option the scenario does not take or a bad value."""
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


def base_settings(scenario: str) -> lg.TestSettings:
    """TestSettings holding the installed LoadGen's own rules for this scenario."""
    settings = lg.TestSettings()
    # conf_type 0 reads only the mlperf.conf compiled into LoadGen (no user.conf, so the path is
    # unused); model "*" takes the rules that apply to every model.
    if settings.FromConfig("", "*", LOADGEN_SCENARIOS[scenario], 0) != 0:
        raise RuntimeError(f"LoadGen could not load its built-in rules for {scenario}")
    settings.scenario = getattr(lg.TestScenario, LOADGEN_SCENARIOS[scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    return settings


def apply_preset(
    settings: lg.TestSettings,
    preset: ScenarioPreset,
    samples_per_query: int | None,
    target_latency_ms: float | None,
    max_duration_s: float | None,
) -> None:
    """The preset's durations and query counts, then the caller's overrides."""
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


def calibrate(
    runtime: SupportsRun,
    samples: list[list[np.ndarray]],
    preset: ScenarioPreset,
    batching: Batching,
    log_dir: Path,
) -> dict[str, Any]:
    """Measure the runtime's speed with short LoadGen runs; their logs stay in log_dir.

    One sample per query (single-stream), and for offline with batches of more than one sample,
    a short offline run at that batching: its samples/s sizes the real run."""
    settings = base_settings("single-stream")
    settings.min_duration_ms = preset.calibration_ms
    settings.min_query_count = 1
    # LoadGen pre-generates 2 x duration / expected latency queries; a small guess leaves plenty.
    settings.single_stream_expected_latency_ns = 100_000
    run_test(runtime, samples, settings, log_dir / "single-stream", False, batching, False)
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
        settings = base_settings("offline")
        settings.min_duration_ms = preset.calibration_ms
        settings.min_query_count = 1
        settings.offline_expected_qps = guess
        run_test(runtime, samples, settings, log_dir / "offline", False, batching, True)
        values = parse_detail_log(log_dir / "offline" / f"{LOG_PREFIX}detail.txt").values
        rate = float(values["result_samples_per_second"])
        seconds = int(values["generated_samples_per_query"]) / max(rate, 1e-9)
        if seconds >= target_s / 2:
            break
        guess = max(rate, guess)
    return {"offline_samples_per_second": rate, "offline_calibration_runs": runs}


def apply_speed(
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
