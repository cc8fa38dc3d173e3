"""Scenario presets: how long and how many queries LoadGen runs for quick, standard and mlperf."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from accelbench.errors import UsageError

SCENARIOS: tuple[str, ...] = ("single-stream", "multi-stream", "server", "offline")
PRESETS: tuple[str, ...] = ("quick", "standard", "mlperf")
# The scenarios whose system under test may group queued samples into one runtime call
# (``batch_size``); single-stream and multi-stream keep one sample per query, as MLPerf defines.
BATCHED_SCENARIOS: tuple[str, ...] = ("offline", "server")


@dataclass(frozen=True)
class ScenarioPreset:
    """LoadGen limits for one scenario under one preset.

    Every preset starts from the rules that the installed LoadGen embeds (its mlperf.conf, read
    with TestSettings.FromConfig for the generic model "*": official seeds, target percentiles,
    samples per query, server latency bound). A field left None keeps that rule; quick and
    standard shorten the duration and query count, and mlperf keeps every rule as it is, so the
    mlperf preset follows whatever LoadGen release is installed (6.0: 600 s minimum duration,
    662 MultiStream queries) instead of a copy of its numbers here.
    """

    name: str
    scenario: str
    # None keeps LoadGen's rule; for offline, min_query_count is LoadGen's minimum sample count.
    min_duration_ms: int | None
    min_query_count: int | None
    # 0 means no cap. A cap that ends a run early makes LoadGen report it INVALID, as it should.
    max_duration_ms: int
    # Length of the LoadGen SingleStream run that measures the runtime's speed, from which the
    # expected latencies, server target QPS and offline expected QPS are derived when not given.
    calibration_ms: int
    # LoadGen's trace holds the per-sample latencies; it costs ~0.5% throughput, so the mlperf
    # runs, whose LoadGen settings follow the official rules, leave it off.
    loadgen_trace: bool
    # True when the preset keeps every LoadGen rule for the scenario (duration, query count).
    # That is one condition of an MLPerf result, not all of them: see mlperf_comparability.
    official_loadgen_rules: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quick(scenario: str) -> ScenarioPreset:
    # Query counts are LoadGen's early-stopping minimums where they fit in seconds (64 for the
    # SingleStream p90, 459 for Server's p99 with no late query), so a fast runtime can come out
    # VALID; MultiStream's 662 would take too long, so a quick MultiStream run is usually INVALID.
    counts = {"single-stream": 64, "multi-stream": 64, "server": 460, "offline": 64}
    return ScenarioPreset(
        name="quick",
        scenario=scenario,
        min_duration_ms=1_000,
        min_query_count=counts[scenario],
        max_duration_ms=10_000,
        calibration_ms=300,
        loadgen_trace=True,
        official_loadgen_rules=False,
    )


def _standard(scenario: str) -> ScenarioPreset:
    # 662 queries give LoadGen's p99 early-stopping estimate for SingleStream and MultiStream.
    counts = {"single-stream": 662, "multi-stream": 662, "server": 1_000, "offline": 1_024}
    return ScenarioPreset(
        name="standard",
        scenario=scenario,
        min_duration_ms=10_000,
        min_query_count=counts[scenario],
        max_duration_ms=60_000,
        calibration_ms=1_000,
        loadgen_trace=True,
        official_loadgen_rules=False,
    )


def _mlperf(scenario: str) -> ScenarioPreset:
    return ScenarioPreset(
        name="mlperf",
        scenario=scenario,
        min_duration_ms=None,
        min_query_count=None,
        max_duration_ms=0,
        calibration_ms=2_000,
        loadgen_trace=False,
        official_loadgen_rules=True,
    )


def mlperf_comparability(
    loadgen_settings: bool, sample_count: int | None, inputs: str | None
) -> dict[str, Any]:
    """What of a LoadGen run matches an MLPerf Inference result, part by part.

    loadgen_settings: LoadGen ran the scenario's official rules, uncut (the mlperf preset with no
    duration cap or changed samples per query). The other parts are never met by accelbench: the
    samples are synthetic or the user's, not the benchmark's reference data set, and no LoadGen
    AccuracyOnly run checks the outputs, so a record is never comparable as a whole.
    """
    count = f"{sample_count} " if sample_count else ""
    return {
        "loadgen_settings": bool(loadgen_settings),
        "dataset": f"{count}user inputs ({inputs})" if inputs else f"{count}synthetic samples",
        "reference_dataset": False,
        "accuracy_run": False,
    }


def comparable_to_mlperf(comparability: dict[str, Any]) -> bool:
    """True only when every part of `mlperf_comparability` is met."""
    return all(
        comparability.get(k) is True
        for k in ("loadgen_settings", "reference_dataset", "accuracy_run")
    )


def record_comparability(settings: dict[str, Any]) -> dict[str, Any] | None:
    """A record's `mlperf_comparability`, or None for a record that is not a LoadGen run.

    A record that carries only ``comparable_to_mlperf`` had that flag for its LoadGen settings
    alone; its parts are rebuilt from the flag and the record's inputs.
    """
    found = settings.get("mlperf_comparability")
    if isinstance(found, dict):
        return found
    flag = settings.get("comparable_to_mlperf")
    if not isinstance(flag, bool):
        return None
    qsl = ((settings.get("loadgen") or {}).get("qsl")) or {}
    inputs = settings.get("inputs")
    user = inputs if isinstance(inputs, str) and inputs != "synthetic" else None
    return mlperf_comparability(flag, qsl.get("total_sample_count"), user)


def comparability_note(settings: list[dict[str, Any]]) -> str | None:
    """One sentence for a run: which parts of an MLPerf result its LoadGen records match."""
    parts = [c for c in map(record_comparability, settings) if c is not None]
    if not parts:
        return None
    if all(comparable_to_mlperf(c) for c in parts):
        return "Comparable with MLPerf Inference results."
    official = sum(bool(c.get("loadgen_settings")) for c in parts)
    datasets = sorted({str(c.get("dataset")) for c in parts})
    return (
        "Not comparable with MLPerf Inference results: LoadGen ran its official rules in "
        f"{official} of {len(parts)} LoadGen cells (preset mlperf, uncut); the data was "
        f"{', '.join(datasets)}, not the benchmark's reference data set; and no accuracy run "
        "checked the outputs."
    )


_BUILDERS = {"quick": _quick, "standard": _standard, "mlperf": _mlperf}


def check_scenario(scenario: str) -> str:
    """The scenario name if accelbench knows it, else a UsageError naming the accepted ones."""
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
    return scenario


def get_preset(name: str, scenario: str) -> ScenarioPreset:
    """The preset `name` (quick, standard, mlperf) for `scenario`; UsageError if one is unknown."""
    check_scenario(scenario)
    if name not in _BUILDERS:
        raise UsageError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return _BUILDERS[name](scenario)
