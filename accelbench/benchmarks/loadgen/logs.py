"""LoadGen's logs read back: the entries of mlperf_log_detail.txt, the per-sample latencies of its
trace, and a run's metrics, early-stopping verdict and invalid reason from those entries."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from accelbench.records import metric

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


@dataclass
class DetailLog:
    """The ":::MLLOG" entries of mlperf_log_detail.txt: values by key, and LoadGen's messages."""

    values: dict[str, Any]
    errors: list[str]
    warnings: list[str]
    messages: list[str]


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


def early_stopping_verdict(scenario: str, values: dict[str, Any]) -> dict[str, Any]:
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


def result_metrics(
    scenario: str, values: dict[str, Any], early_stopping: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The run's metrics from the detail log's values (see ScenarioResult)."""
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


def invalid_reason(valid: bool, values: dict[str, Any], criteria: dict[str, bool]) -> str:
    """Why LoadGen judged the run INVALID, with the criteria it failed; "" when VALID."""
    if valid:
        return ""
    reason = " ".join(str(values.get("result_invalid_reason", "")).split())
    failed = [name for name, ok in criteria.items() if not ok]
    if failed:
        reason = (reason + " " if reason else "") + "Failed: " + ", ".join(failed) + "."
    return reason


def log_files(log_dir: Path) -> dict[str, str]:
    """The paths of the logs LoadGen leaves in ``log_dir``, by kind."""
    names = {"summary": "summary.txt", "detail": "detail.txt", "accuracy": "accuracy.json"}
    return {kind: str(log_dir / f"{LOG_PREFIX}{name}") for kind, name in names.items()}
