"""Reference models and users' Keras models through `accelbench run` / `optimize` / `recommend`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("digits")
    suite = tmp / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "models": [{"name": "digits_cnn"}],
                "optimizations": ["fp32", "int8", "prune50+int8"],
                "profiles": ["host", "coral-edgetpu"],
                "threads": [1],
                "scenarios": ["single-stream"],
            }
        )
    )
    out = tmp / "run"
    proc = run_cli("run", str(suite), "--out", str(out), "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "digits_cnn" in proc.stdout
    return out


def test_training_and_accuracy_records(digits_run: Path) -> None:
    records = _records(digits_run)
    (training,) = [r for r in records if r["scenario"] == "training"]
    assert training["status"] == "ok"
    m = training["metrics"]
    assert m["accuracy"]["value"] >= 0.9 and m["epochs"]["value"] >= 1
    assert m["train_wall_s"]["value"] > 0 and m["time_to_target_s"]["value"] is not None
    accuracy = {r["optimization"]: r for r in records if r["scenario"] == "accuracy"}
    assert set(accuracy) == {"fp32", "int8", "prune50+int8"}
    fp32, int8, pruned = accuracy["fp32"], accuracy["int8"], accuracy["prune50+int8"]
    assert fp32["metrics"]["accuracy_delta"]["value"] == 0
    # Deltas are against the fp32 artifact on the same evaluation set.
    for r in (int8, pruned):
        delta = r["metrics"]["accuracy"]["value"] - fp32["metrics"]["accuracy"]["value"]
        assert r["metrics"]["accuracy_delta"]["value"] == pytest.approx(delta)
        assert set(r["quality"]["per_class"]) == {str(i) for i in range(10)}
        assert 0 < r["metrics"]["prediction_agreement"]["value"] <= 1
    assert int8["metrics"]["model_bytes"]["value"] < 0.4 * fp32["metrics"]["model_bytes"]["value"]
    assert pruned["metrics"]["sparsity"]["value"] >= 0.45
    assert (
        pruned["metrics"]["model_gzip_bytes"]["value"]
        < int8["metrics"]["model_gzip_bytes"]["value"]
    )
    assert int8["quality"]["float_ops"] == [] and int8["quality"]["int_ops"]


def test_benchmark_cells_carry_quality_and_the_edge_tpu_refuses_float(digits_run: Path) -> None:
    records = _records(digits_run)
    bench = [r for r in records if r["scenario"] == "single-stream"]
    host = {r["optimization"]: r for r in bench if r["profile"] == "host"}
    for r in host.values():
        assert r["status"] == "ok"
        assert r["metrics"]["latency_p50_ms"]["value"] > 0
        assert "accuracy" in r["metrics"] and "accuracy_delta" in r["metrics"]
    coral = {r["optimization"]: r for r in bench if r["profile"] == "coral-edgetpu"}
    assert coral["fp32"]["status"] == "skipped" and "int8" in coral["fp32"]["error"]
    assert coral["int8"]["status"] == "ok" and coral["int8"]["execution"] == "projected"


def test_report_files(digits_run: Path) -> None:
    md = (digits_run / "report.md").read_text()
    assert "## digits_cnn" in md and "Recommendations:" in md
    assert "int8 against fp32 on host, 1 thread, timed pair by pair in one worker: " in md
    assert (digits_run / "report_files" / "digits_cnn_pareto.png").stat().st_size > 1000
    page = (digits_run / "report.html").read_text()
    assert "data:image/png;base64," in page and "<table>" in page


def test_recommend_answers_and_says_when_nothing_fits(digits_run: Path) -> None:
    ok = run_cli("recommend", str(digits_run), "--max-latency-ms", "1000", "--min-accuracy", "0.5")
    assert ok.returncode == 0 and "meet the budget" in ok.stdout and "digits_cnn" in ok.stdout
    none = run_cli("recommend", str(digits_run), "--max-latency-ms", "0.000001")
    assert none.returncode == 0
    assert "nothing in this run meets the budget" in none.stdout
    assert "latency" in none.stdout and "closest" in none.stdout
    bad = run_cli("recommend", str(digits_run))
    assert bad.returncode == 2 and "budget" in bad.stderr
    wrong = run_cli("recommend", str(digits_run), "--max-latency-ms", "5", "--profile", "rpi5")
    assert wrong.returncode == 2 and "rpi5" in wrong.stderr


def _user_model(tmp: Path) -> tuple[Path, Path]:
    """A functional Keras 2 model with a LayerNormalization, which QAT does not support."""
    code = f"""
import os, numpy as np
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras as keras
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
keras.utils.set_random_seed(0)
inp = keras.Input((64,))
h = keras.layers.Dense(32, activation="relu")(inp)
h = keras.layers.LayerNormalization()(h)
out = keras.layers.Dense(10, activation="softmax")(h)
m = keras.Model(inp, out)
m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
m.fit(x[:1400], y[:1400], epochs=3, verbose=0)
m.save({str(tmp / "user.h5")!r})
np.savez({str(tmp / "data.npz")!r}, x_train=x[:1400], y_train=y[:1400],
         x_test=x[1400:], y_test=y[1400:])
"""
    subprocess.run(["python", "-c", code], check=True, capture_output=True)
    return tmp / "user.h5", tmp / "data.npz"


def test_optimize_users_model_goes_on_when_one_optimization_fails(tmp_path: Path) -> None:
    model, data = _user_model(tmp_path)
    out = tmp_path / "run"
    proc = run_cli(
        "optimize",
        str(model),
        "--data",
        str(data),
        "--optimizations",
        "fp32,int8,qat_int8",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
        timeout=900,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # one optimization failed: exit 1
    accuracy = {r["optimization"]: r for r in _records(out) if r["scenario"] == "accuracy"}
    assert accuracy["fp32"]["status"] == "ok" and accuracy["int8"]["status"] == "ok"
    assert accuracy["qat_int8"]["status"] == "failed"
    assert "LayerNormalization" in accuracy["qat_int8"]["error"], accuracy["qat_int8"]["error"]
    bench = {r["optimization"]: r for r in _records(out) if r["scenario"] == "single-stream"}
    assert bench["int8"]["status"] == "ok"
    assert bench["qat_int8"]["status"] == "failed" and "no artifact" in bench["qat_int8"]["error"]


def test_optimize_bad_input(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)))
    proc = run_cli("optimize", str(tmp_path / "nope.keras"), "--data", str(tmp_path / "d.npz"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_cli("optimize", str(tmp_path / "d.npz"), "--data", str(tmp_path / "d.npz"))
    assert proc.returncode == 2 and "accelbench bench" in proc.stderr
    proc = run_cli("run", "--suite", "fastest")
    assert proc.returncode == 2 and "default" in proc.stderr


def test_autoencoder_records_carry_auc_not_accuracy(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "models": [{"name": "ad_autoencoder"}],
                "optimizations": ["fp32"],
                "epochs": 2,
                "threads": [1],
                "scenarios": ["single-stream"],
            }
        )
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out), "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for r in _records(out):
        assert "accuracy" not in r["metrics"], r["scenario"]
        assert 0 <= r["metrics"]["auc"]["value"] <= 1, r["scenario"]
    (bench,) = [r for r in _records(out) if r["scenario"] == "single-stream"]
    assert bench["metrics"]["auc_delta"]["value"] == 0
