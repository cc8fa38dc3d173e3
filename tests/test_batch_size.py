"""Batching in Offline and Server: --batch-size / a suite's batch_size groups queued samples into
one runtime call for a dynamic-batch model (padded to a power of two, each shape run once before
the measurement), and a fixed batch dimension refuses another size."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, run_cli

from accelbench.benchmarks.loadgen import run_scenario
from accelbench.errors import UsageError
from accelbench.runner.suite import expand, suite_from_mapping

SERVICE_S = 0.002


class DynamicBatchRuntime:
    """Takes SERVICE_S per call whatever the batch, and any batch: a dynamic batch dimension."""

    max_batch_size = None

    def __init__(self) -> None:
        self.batch_sizes: Counter[int] = Counter()
        self.prepared_for: int | None = None

    def set_batch_size(self, n: int) -> None:
        self.prepared_for = n

    def run(self, inputs):
        self.batch_sizes[inputs[0].shape[0]] += 1
        time.sleep(SERVICE_S)
        return [inputs[0] * 2.0]


class FixedBatchRuntime(DynamicBatchRuntime):
    max_batch_size = 1


def _samples(n: int = 16) -> list[list[np.ndarray]]:
    return [[np.full((1, 8), i, dtype=np.float32)] for i in range(n)]


def test_offline_groups_up_to_batch_size_samples_per_call(tmp_path: Path) -> None:
    runtime = DynamicBatchRuntime()
    result = run_scenario(runtime, _samples(), "offline", "quick", tmp_path, batch_size=8)

    assert result.valid, result.invalid_reason
    assert runtime.prepared_for == 8
    sut = result.settings["sut"]
    assert sut["batch_size"] == 8 and sut["fixed_batch"] is False
    # Every shape is run once before LoadGen starts; calls use only those shapes, nearly all
    # full (Offline queues every sample at once: only a run's last batch is short).
    assert sut["batch_shapes"] == [1, 2, 4, 8] and sut["warm_up_calls"] == 4
    assert set(runtime.batch_sizes) <= {1, 2, 4, 8}
    assert sut["padded_rows"] < 8
    assert 7 < sut["samples_per_call"] <= 8
    # About 8 samples per SERVICE_S: well above one sample per call.
    assert 2 / SERVICE_S < result.metrics["qps"]["value"] <= 8 / SERVICE_S
    calibration = result.settings["calibration"]
    assert calibration["offline_samples_per_second"] > 2 / SERVICE_S


def test_without_a_batch_size_a_dynamic_batch_runs_one_sample_per_call(tmp_path: Path) -> None:
    runtime = DynamicBatchRuntime()
    result = run_scenario(runtime, _samples(), "offline", "quick", tmp_path)

    assert set(runtime.batch_sizes) == {1} and runtime.prepared_for is None
    sut = result.settings["sut"]
    assert sut["batch_size"] == 1 and sut["warm_up_calls"] == 0
    assert sut["samples_per_call"] == 1 and sut["padded_rows"] == 0
    assert result.metrics["qps"]["value"] <= 1 / SERVICE_S


def test_server_groups_what_is_queued_up_to_the_batch_size(tmp_path: Path) -> None:
    runtime = DynamicBatchRuntime()
    result = run_scenario(
        runtime, _samples(), "server", "quick", tmp_path, batch_size=8, target_qps=1500.0
    )

    # Offered faster than one sample per call can serve: the queue fills and calls group its
    # samples, up to 8, padded to a power of two.
    assert set(runtime.batch_sizes) <= {1, 2, 4, 8}
    sut = result.settings["sut"]
    assert sut["batch_size"] == 8 and sut["samples_per_call"] > 1
    # Every row the runtime ran (no calibration: the target QPS was given): the warm-up's
    # shapes, and the run's samples and padding.
    assert result.settings["calibration"] is None
    rows = sum(size * calls for size, calls in runtime.batch_sizes.items())
    samples = sut["samples_per_call"] * sut["runtime_calls"]
    assert rows == pytest.approx((1 + 2 + 4 + 8) + samples + sut["padded_rows"])
    completed = result.metrics["qps"]["value"]
    assert completed == pytest.approx(1500.0, rel=0.25)


@pytest.mark.parametrize(
    ("runtime", "scenario", "message"),
    [
        (FixedBatchRuntime(), "offline", "fixed to 1, so batch size 8 is impossible"),
        (DynamicBatchRuntime(), "single-stream", "offline and server"),
        (DynamicBatchRuntime(), "multi-stream", "offline and server"),
    ],
)
def test_impossible_batch_sizes_are_usage_errors(tmp_path, runtime, scenario, message) -> None:
    with pytest.raises(UsageError, match=message):
        run_scenario(runtime, _samples(), scenario, "quick", tmp_path, batch_size=8)
    assert not list(tmp_path.iterdir())  # rejected before LoadGen ran


def test_suite_batch_size_reaches_offline_and_server_cells_only() -> None:
    suite = suite_from_mapping(
        {
            "models": [{"path": str(DATA / "dynamic_batch_f32.tflite")}],
            "threads": [1],
            "scenarios": ["single-stream", "offline", "server"],
            "batch_size": 32,
        },
        "test",
    )
    cells = {c.scenario: c for c in expand(suite)}
    assert cells["offline"].batch_size == cells["server"].batch_size == 32
    assert cells["single-stream"].batch_size is None
    # The batch size is part of a cell's identity, so compare never matches it with another.
    assert cells["offline"].logical_key["batch_size"] == 32
    assert "batch_size" not in cells["single-stream"].logical_key
    unbatched = suite.model_copy(update={"batch_size": None})
    ids = {c.scenario: c.cell_id for c in expand(unbatched)}
    assert ids["single-stream"] == cells["single-stream"].cell_id
    assert ids["offline"] != cells["offline"].cell_id
    with pytest.raises(UsageError, match="batch_size.*offline and server"):
        suite_from_mapping(
            {"models": [{"name": "digits_cnn"}], "scenarios": ["single-stream"], "batch_size": 8},
            "test",
        )


def test_bench_batch_size_batches_a_dynamic_batch_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "dynamic_batch_f32.tflite"),
        "--threads",
        "1",
        "--scenario",
        "single-stream,offline",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    records = {
        r["scenario"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())
    }
    offline, single = records["offline"], records["single-stream"]
    assert offline["status"] == "ok", offline["error"]
    assert offline["settings"]["batch_size"] == 8
    sut = offline["settings"]["loadgen"]["sut"]
    assert sut["batch_size"] == 8 and sut["batch_shapes"] == [1, 2, 4, 8]
    assert sut["samples_per_call"] > 1  # more than one sample per runtime call
    # Single-stream keeps one sample per query.
    assert single["settings"]["batch_size"] is None
    assert single["settings"]["loadgen"]["sut"]["batch_size"] == 1
    assert single["settings"]["loadgen"]["sut"]["samples_per_call"] == 1
