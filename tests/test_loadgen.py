"""LoadGen scenarios through run_scenario: fake runtimes of known speed, one real LiteRT model."""

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from accelbench.benchmarks.loadgen import run_scenario
from accelbench.benchmarks.presets import SCENARIOS, get_preset
from accelbench.errors import UsageError

SERVICE_S = 0.002
MLP = Path(__file__).parent / "data" / "mlp_f32.tflite"


class SleepRuntime:
    """Takes SERVICE_S per call whatever the batch; like a .tflite, its batch size is fixed."""

    def __init__(self, max_batch_size: int = 1) -> None:
        self.max_batch_size = max_batch_size
        self.batch_sizes: Counter[int] = Counter()

    def run(self, inputs):
        batch = inputs[0].shape[0]
        if batch != self.max_batch_size:
            raise ValueError(f"batch dimension is fixed to {self.max_batch_size}, got {batch}")
        self.batch_sizes[batch] += 1
        time.sleep(SERVICE_S)
        return [inputs[0] * 2.0, inputs[0].sum(axis=1)]


class FailingRuntime:
    def run(self, inputs):
        raise RuntimeError("the accelerator fell off the bus")


def _samples(n: int = 16) -> list[list[np.ndarray]]:
    return [[np.full((1, 8), i, dtype=np.float32)] for i in range(n)]


def _nearest_rank(values_ms: list[float], fraction: float) -> float:
    # LoadGen's percentile: sorted[int(n * fraction)].
    ordered = sorted(values_ms)
    return ordered[int(len(ordered) * fraction)]


def test_single_stream_quick_is_valid_and_raw_latencies_are_loadgens(tmp_path):
    result = run_scenario(SleepRuntime(), _samples(), "single-stream", "quick", tmp_path)

    assert result.valid and result.result_validity == "VALID"
    assert result.criteria == {
        "min_duration_satisfied": True,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": True,
    }
    p50 = result.metrics["latency_p50_ms"]
    assert p50["unit"] == "ms" and p50["direction"] == "lower"
    assert 1.8 <= p50["value"] <= 6.0
    assert result.metrics["qps"]["direction"] == "higher"
    assert (
        0
        < result.metrics["qps"]["value"]
        <= result.metrics["qps_without_loadgen_overhead"]["value"] * 1.01
    )
    assert "early_stopping_p90_ms" in result.metrics

    # The raw list is LoadGen's own: one per query, and LoadGen's percentiles come out of it.
    query_count = result.metrics["query_count"]["value"]
    assert query_count >= 64 and len(result.latencies_ms) == query_count
    assert result.latencies_source == "loadgen_trace"
    assert _nearest_rank(result.latencies_ms, 0.5) == pytest.approx(p50["value"], abs=1e-6)
    assert max(result.latencies_ms) == pytest.approx(result.metrics["latency_max_ms"]["value"])
    assert result.metrics["duration_s"]["value"] >= 1.0  # the quick preset's minimum duration
    assert not (tmp_path / "mlperf_log_trace.json").exists()  # read, then deleted
    assert all(Path(path).exists() for path in result.log_files.values())

    assert result.comparable_to_mlperf is False
    assert result.settings["loadgen"]["min_duration_ms"] == 1000
    assert result.settings["loadgen"]["scenario"] == "SingleStream"
    assert result.settings["effective"]["min_query_count"] == 64
    assert result.settings["derived"]["single_stream_expected_latency_ns"].startswith("calibrated")
    summary = Path(result.log_files["summary"]).read_text()
    assert "Result is : VALID" in summary
    assert result.to_dict()["metrics"]["latency_p50_ms"] == p50


@pytest.mark.parametrize("scenario", ["multi-stream", "server"])
def test_latency_scenarios_measure_the_service_time(tmp_path, scenario):
    runtime = SleepRuntime(max_batch_size=8)
    kwargs = {"target_latency_ms": 100.0} if scenario == "server" else {}
    result = run_scenario(runtime, _samples(), scenario, "quick", tmp_path, **kwargs)

    # One runtime call per query batch of up to 8 samples, so a query takes about SERVICE_S.
    assert 1.8 <= result.metrics["latency_p50_ms"]["value"] <= 6.0
    assert len(result.latencies_ms) == result.metrics["query_count"]["value"]
    assert max(result.latencies_ms) == pytest.approx(result.metrics["latency_max_ms"]["value"])
    assert result.criteria["min_duration_satisfied"] and result.criteria["min_queries_satisfied"]
    if scenario == "multi-stream":
        # LoadGen's 8 samples per query, one runtime call each (plus one per calibration query).
        calibration_calls = result.settings["calibration"]["single_stream_query_count"]
        assert runtime.batch_sizes[8] == len(result.latencies_ms) + calibration_calls
        assert result.settings["sut"]["padded_rows"] == 0  # 8 samples fill a batch of 8
        assert result.metrics["sample_count"]["value"] == 8 * len(result.latencies_ms)
    else:
        assert result.valid, result.invalid_reason
        assert result.criteria["performance_constraints_satisfied"]
        assert result.settings["derived"]["server_target_qps"].startswith("calibrated")
        # At half load most batches hold one real sample; the rest of the 8 rows are padding.
        assert result.settings["sut"]["padded_rows"] > 0
        target = result.settings["loadgen"]["server_target_qps"]
        assert result.metrics["qps"]["value"] == pytest.approx(target, rel=0.25)


def test_offline_batches_and_reports_loadgen_throughput(tmp_path):
    runtime = SleepRuntime(max_batch_size=8)
    result = run_scenario(runtime, _samples(), "offline", "quick", tmp_path)

    assert result.valid, result.invalid_reason
    assert max(runtime.batch_sizes) == 8
    qps = result.metrics["qps"]
    assert qps["unit"] == "samples/s" and qps["direction"] == "higher"
    # Batches of 8 at SERVICE_S each: well above one sample per call, never above 8 per call.
    assert 2 / SERVICE_S < qps["value"] <= 8 / SERVICE_S
    # Offline is one query of many samples; the raw list has one latency per sample.
    assert result.metrics["query_count"]["value"] == 1
    assert len(result.latencies_ms) == result.metrics["sample_count"]["value"]
    assert "offline_samples_per_second" in result.settings["calibration"]


def test_impossible_latency_bound_is_invalid_with_the_failing_criterion(tmp_path):
    result = run_scenario(
        SleepRuntime(),
        _samples(),
        "server",
        "quick",
        tmp_path,
        target_qps=400.0,
        target_latency_ms=0.001,
    )

    assert result.valid is False and result.result_validity == "INVALID"
    assert result.criteria["performance_constraints_satisfied"] is False
    assert (
        result.metrics["overlatency_query_count"]["value"] == result.metrics["query_count"]["value"]
    )
    assert "performance_constraints_satisfied" in result.invalid_reason
    assert result.settings["derived"]["server_target_qps"] == "given"
    assert result.settings["loadgen"]["server_target_latency_ns"] == 1000
    summary = Path(result.log_files["summary"]).read_text()
    assert re.search(r"Performance constraints satisfied : NO", summary)


def test_mlperf_preset_takes_loadgens_own_rules(tmp_path):
    # Capped at 1 s, the run cannot meet LoadGen's minimum duration: INVALID, and not comparable.
    result = run_scenario(
        SleepRuntime(),
        _samples(),
        "server",
        "mlperf",
        tmp_path,
        target_qps=200.0,
        max_duration_s=1.0,
    )

    loadgen = result.settings["loadgen"]
    assert loadgen["min_duration_ms"] == 600_000  # LoadGen 6.0's mlperf.conf rule
    assert loadgen["server_target_latency_ns"] == 10_000_000  # its bound for a generic model
    assert loadgen["schedule_rng_seed"] != 0  # the official seeds, not TestSettings' zeros
    assert result.criteria["min_duration_satisfied"] is False and not result.valid
    assert result.comparable_to_mlperf is False
    assert result.latencies_ms == [] and result.latencies_source == "none"
    assert get_preset("mlperf", "server").official_loadgen_rules is True


def test_runtime_error_is_raised_and_the_next_run_still_works(tmp_path):
    with pytest.raises(RuntimeError, match="fell off the bus"):
        run_scenario(FailingRuntime(), _samples(), "single-stream", "quick", tmp_path / "a")
    result = run_scenario(
        SleepRuntime(), _samples(), "server", "quick", tmp_path / "b", target_qps=300.0
    )
    assert result.metrics["query_count"]["value"] >= 460


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "streaming"}, "single-stream, multi-stream, server, offline"),
        ({"preset": "fast"}, "quick, standard, mlperf"),
        ({"target_qps": 10.0}, "target_qps applies to the server and offline"),
        ({"target_latency_ms": 5.0}, "latency bound"),
        ({"scenario": "multi-stream", "samples_per_query": 0}, "positive integer"),
        ({"samples": []}, "samples is empty"),
        ({"samples": [np.zeros((1, 8), np.float32)]}, "list of input arrays"),
    ],
)
def test_bad_arguments_raise_usage_error(tmp_path, kwargs, message):
    positional = {"scenario": "single-stream", "preset": "quick", "samples": _samples()}
    options = {key: value for key, value in kwargs.items() if key not in positional}
    call = positional | {key: value for key, value in kwargs.items() if key in positional}
    with pytest.raises(UsageError, match=message):
        run_scenario(
            SleepRuntime(), call["samples"], call["scenario"], call["preset"], tmp_path, **options
        )
    assert not list(tmp_path.iterdir())  # rejected before LoadGen ran


def test_presets_cover_every_scenario():
    for scenario in SCENARIOS:
        quick, standard = get_preset("quick", scenario), get_preset("standard", scenario)
        assert quick.min_duration_ms < standard.min_duration_ms
        assert not quick.official_loadgen_rules and not standard.official_loadgen_rules


class LiteRTRuntime:
    """The least a LiteRT interpreter needs to be a runtime: set inputs, invoke, read outputs."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path))
        self._interpreter.allocate_tensors()
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()

    def run(self, inputs):
        for detail, array in zip(self._inputs, inputs, strict=True):
            self._interpreter.set_tensor(detail["index"], array)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(detail["index"]) for detail in self._outputs]


def test_real_litert_model_single_stream(tmp_path):
    runtime = LiteRTRuntime(MLP)
    shape = [int(d) for d in runtime._inputs[0]["shape"]]
    rng = np.random.default_rng(0)
    samples = [[rng.standard_normal(shape).astype(np.float32)] for _ in range(32)]

    result = run_scenario(runtime, samples, "single-stream", "quick", tmp_path)

    assert result.valid, result.invalid_reason
    p50 = result.metrics["latency_p50_ms"]["value"]
    assert 0 < p50 < 50  # a 64-feature MLP on a CPU
    assert len(result.latencies_ms) == result.metrics["query_count"]["value"]
    assert result.metrics["qps"]["value"] > 20


class SpeedsUpRuntime:
    """Slow while the calibration measures it, then four times faster: the machine sped up."""

    max_batch_size = 1

    def __init__(self, slow_calls: int) -> None:
        self.calls = 0
        self.slow_calls = slow_calls

    def run(self, inputs):
        self.calls += 1
        time.sleep(0.002 if self.calls <= self.slow_calls else 0.0005)
        return [inputs[0]]


def test_offline_that_runs_short_of_its_minimum_duration_is_rerun_at_the_seen_rate(tmp_path):
    # The quick calibration (300 ms at 2 ms per call) sees ~150 calls; everything after is fast,
    # so the calibrated sample count runs out long before the 1 s minimum duration.
    runtime = SpeedsUpRuntime(slow_calls=150)
    result = run_scenario(runtime, _samples(), "offline", "quick", tmp_path)
    assert result.valid, result.invalid_reason
    assert "rerun" in result.settings["derived"]["offline_expected_qps"]
