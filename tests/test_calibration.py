"""Host calibration: positive measured figures, a per-host cache, and an honest int8 kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accelbench.hardware_profiles import detect_host, host_fingerprint_id
from accelbench.hardware_profiles.calibrate import (
    CALIBRATION_FILE,
    calibrate,
    int8_fully_connected_model,
    load_calibration,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELBENCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_calibrate_measures_positive_figures_and_caches_them_for_this_host(cache):
    assert load_calibration() is None
    measured = calibrate(seconds=1.0)

    assert measured.fp32_gflops > 0.1
    assert measured.int8_gops and measured.int8_gops > 0.1
    assert measured.memory_bandwidth_gbps > 0.1
    assert measured.seconds < 10
    assert set(measured.methods) == {"fp32_gflops", "int8_gops", "memory_bandwidth_gbps"}
    assert "numpy float32 matmul" in measured.methods["fp32_gflops"]
    assert "read + bytes written" in measured.methods["memory_bandwidth_gbps"]

    stored = json.loads((cache / CALIBRATION_FILE).read_text())
    assert list(stored) == [host_fingerprint_id()]
    assert load_calibration() == measured

    # The detected host now carries the measured peaks, each with its source.
    host = detect_host()
    assert host.peak_compute["fp32"] == pytest.approx(measured.fp32_gflops / 1e3)
    assert host.memory_bandwidth_gbps == measured.memory_bandwidth_gbps
    assert host.unsourced_figures() == []


def test_another_hosts_calibration_is_neither_returned_nor_overwritten(cache):
    other = {"fp32_gflops": 1.0, "host_fingerprint_id": "000000000000"}
    (cache / CALIBRATION_FILE).write_text(json.dumps({"000000000000": other}))
    assert load_calibration() is None

    calibrate(seconds=0.3)
    stored = json.loads((cache / CALIBRATION_FILE).read_text())
    assert stored["000000000000"] == other
    assert host_fingerprint_id() in stored


def test_a_corrupt_cache_reads_as_not_calibrated(cache):
    (cache / CALIBRATION_FILE).write_text("{not json")
    assert load_calibration() is None
    assert detect_host().peak_compute == {}


def test_the_int8_calibration_model_really_is_an_int8_matmul():
    from ai_edge_litert.interpreter import Interpreter

    m, k, n = 4, 16, 3
    interpreter = Interpreter(model_content=int8_fully_connected_model(m, k, n, seed=7))
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).integers(-20, 21, (m, k), dtype=np.int8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    assert got.dtype == np.int8
    weights = np.random.default_rng(7).integers(-127, 128, (n, k), dtype=np.int8)
    accumulated = x.astype(np.int32) @ weights.T.astype(np.int32)
    # Requantized with the model's scales: input 0.05 x weight 0.02 / output 0.5.
    expected = np.clip(np.round(accumulated * 0.05 * 0.02 / 0.5), -128, 127)
    np.testing.assert_array_equal(got, expected)
