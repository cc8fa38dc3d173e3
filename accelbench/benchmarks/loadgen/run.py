"""One LoadGen scenario run: options checked, the runtime warmed up and calibrated, LoadGen's test,
and its verdict read back as a ScenarioResult.

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

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.benchmarks.loadgen.logs import (
    CRITERIA_KEYS,
    LOG_PREFIX,
    early_stopping_verdict,
    invalid_reason,
    log_files,
    parse_detail_log,
    read_trace_latencies_ns,
    result_metrics,
)
from accelbench.benchmarks.loadgen.settings import (
    OFFLINE_QPS_MARGIN,
    apply_preset,
    apply_speed,
    base_settings,
    calibrate,
    check_options,
    settings_dict,
)
from accelbench.benchmarks.loadgen.sut import (
    SupportsRun,
    is_async,
    run_test,
    sut_batching,
    warm_up,
)
from accelbench.benchmarks.presets import (
    check_scenario,
    comparable_to_mlperf,
    get_preset,
    mlperf_comparability,
)
from accelbench.errors import UsageError


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
    check_options(scenario, target_qps, target_latency_ms, samples_per_query, max_duration_s)
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
    warmed = warm_up(runtime, samples, batching)

    settings = base_settings(scenario)
    rule_samples_per_query = settings.multi_stream_samples_per_query
    apply_preset(settings, chosen, samples_per_query, target_latency_ms, max_duration_s)
    derived: dict[str, str] = {}
    calibration = None
    if scenario in ("single-stream", "multi-stream") or target_qps is None:
        calibration = calibrate(runtime, samples, chosen, batching, log_dir / "calibration")
    apply_speed(settings, scenario, target_qps, batching.size, calibration, derived)

    threaded = scenario in ("server", "offline")
    for attempt in (1, 2):
        sut_counts = run_test(
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
    early_stopping = early_stopping_verdict(scenario, values)
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
        metrics=result_metrics(scenario, values, early_stopping),
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
                "asynchronous": is_async(runtime),
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
        log_files=log_files(log_dir),
        invalid_reason=invalid_reason(valid, values, criteria),
        loadgen_messages=[
            *detail.messages,
            *(f"warning: {w}" for w in detail.warnings),
            *(f"error: {e}" for e in detail.errors),
        ],
        official_loadgen_rules=official,
    )


def _offline_ran_short(scenario: str, target_qps: float | None, values: dict[str, Any]) -> bool:
    """An Offline run with a calibrated rate that failed only its minimum duration."""
    if scenario != "offline" or target_qps is not None or values["result_validity"] == "VALID":
        return False
    failed = [k for k in CRITERIA_KEYS if k in values and not bool(values[k])]
    return failed == ["result_min_duration_met"] and "result_samples_per_second" in values
