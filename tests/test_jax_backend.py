"""The JAX backend: JAX reference models, training (one device, data-parallel), jax2tf export,
serving the exports through the runner, attached-accelerator detection and the accel check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelbench.cli import main
from accelbench.errors import UsageError
from accelbench.models import get_spec, jax_models
from accelbench.optimizers.jax_tflite import export_tflite

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3


def _fresh_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@pytest.fixture(scope="module")
def digits() -> tuple[dict, dict]:
    """digits_cnn_jax trained briefly on one device: (figures, parameters)."""
    return jax_models.fit("digits_cnn_jax", seed=0, epochs=EPOCHS)


def test_jax_models_are_listed_with_their_keras_twins_data(capsys) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits_cnn_jax" in out and "breast_cancer_mlp_jax" in out
    jax_spec, keras_spec = get_spec("digits_cnn_jax"), get_spec("digits_cnn")
    # Same data, metric and target as the Keras model: the two frameworks are comparable.
    assert (jax_spec.target, jax_spec.metric, jax_spec.input_shape) == (
        keras_spec.target,
        keras_spec.metric,
        keras_spec.input_shape,
    )
    assert jax_models.is_jax_model("digits_cnn_jax") and not jax_models.is_jax_model("digits_cnn")


def test_digits_trains_to_a_sensible_quality_with_compile_time_apart(digits) -> None:
    figures, _ = digits
    for key in (
        "quality",
        "target",
        "reached_target",
        "time_to_target_s",
        "compile_s",
        "step_times_s",
        "examples_per_s",
        "devices",
        "wall_s",
        "params",
    ):
        assert key in figures
    assert figures["quality"] >= 0.85
    assert figures["devices"] == 1 and figures["params"] == 38282  # the Keras digits_cnn's count
    steps_per_epoch = len(get_spec("digits_cnn").load_data().x_train) // 64
    # Every step is timed, and none of them includes the compilation, which is reported apart.
    assert len(figures["step_times_s"]) == EPOCHS * steps_per_epoch
    assert figures["compile_s"] > 5 * figures["step_time_median_s"]
    assert figures["examples_per_s"] > 0 and figures["flops_per_step"] > 0
    assert figures["flops_source"] == "XLA CPU cost analysis"  # whatever device trains
    assert 0 < figures["mfu"] < 1 and figures["peak_source"].startswith("host")
    assert figures["wall_s"] >= figures["compile_s"] + sum(figures["step_times_s"]) * 0.99
    json.dumps(figures)  # plain figures, fit for a record


def test_breast_cancer_trains_in_bfloat16() -> None:
    figures = jax_models.train("breast_cancer_mlp_jax", seed=0, epochs=6, precision="bfloat16")
    assert figures["quality"] >= 0.9
    assert figures["precision"] == "bfloat16" and figures["reached_target"] is (
        figures["time_to_target_s"] is not None
    )


def test_bad_training_arguments_are_usage_errors(digits) -> None:
    import jax

    jax.devices()  # JAX is running with this process's devices
    with pytest.raises(UsageError, match="precision"):
        jax_models.train("digits_cnn_jax", seed=0, precision="fp8")
    with pytest.raises(UsageError, match="split evenly"):
        jax_models.train("digits_cnn_jax", seed=0, batch_size=65, devices=2)
    with pytest.raises(UsageError, match="fresh process"):
        jax_models.train("digits_cnn_jax", seed=0, devices=len(jax.devices()) + 1)
    with pytest.raises(UsageError, match="not a JAX reference model"):
        jax_models.train("digits_cnn", seed=0)


def test_two_device_data_parallel_in_a_fresh_process(digits) -> None:
    code = (
        "import json, jax\n"
        "from accelbench.models.jax_models import train\n"
        f"r = train('digits_cnn_jax', seed=0, epochs={EPOCHS}, devices=2)\n"
        "print(json.dumps({'quality': r['quality'], 'devices': r['devices'],\n"
        "                  'jax_devices': jax.device_count(), 'steps': len(r['step_times_s'])}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_fresh_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["jax_devices"] == 2
    # The same global batch and seed: the same number of steps and the same quality ballpark.
    assert result["steps"] == len(digits[0]["step_times_s"])
    assert abs(result["quality"] - digits[0]["quality"]) <= 0.05


def test_exports_match_the_jax_function(digits, tmp_path) -> None:
    from accelbench.optimizers.evaluation import predict_tflite
    from accelbench.runtimes.jax_runtime import JaxRuntime

    _, params = digits
    data = get_spec("digits_cnn_jax").load_data(seed=0)
    expected = np.asarray(jax_models.predict_fn("digits_cnn_jax", params)(data.x_test))

    runtime = JaxRuntime(jax_models.export_jax("digits_cnn_jax", params, tmp_path / "m.jaxexport"))
    (out,) = runtime.run([data.x_test[:5]])
    np.testing.assert_allclose(out, expected[:5], atol=1e-6)
    assert runtime.info()["flops_per_sample"] > 0

    made = {
        name: export_tflite(
            "digits_cnn_jax", params, name, tmp_path, x_train=data.x_train, y_train=data.y_train
        )
        for name in ("fp32", "int8")
    }
    fp32 = predict_tflite(made["fp32"].path, data.x_test)
    np.testing.assert_allclose(fp32, expected, atol=1e-4)
    int8 = predict_tflite(made["int8"].path, data.x_test)
    assert np.mean(int8.argmax(1) == expected.argmax(1)) >= 0.95
    assert made["int8"].path.stat().st_size < made["fp32"].path.stat().st_size / 2
    with pytest.raises(UsageError, match="Keras"):
        export_tflite(
            "digits_cnn_jax",
            params,
            "prune50+int8",
            tmp_path,
            x_train=data.x_train,
            y_train=data.y_train,
        )


def test_prepare_serves_the_jax_model_and_bench_takes_its_tflite(tmp_path) -> None:
    """The preparation worker's JAX path (train, .jaxexport, jax2tf per optimization), then the
    default runner path on its int8 .tflite."""
    from accelbench.runner.prepare import prepare

    job = {
        "kind": "reference",
        "model": "digits_cnn_jax",
        "path": None,
        "data": None,
        "seed": 0,
        "epochs": 2,
        "fine_tune_epochs": 1,
        "optimizations": ["fp32", "int8", "prune50+int8"],
        "out_dir": str(tmp_path / "prepared"),
    }
    result = prepare(job)
    assert result["training"]["framework"] == "jax" and result["training"]["compile_s"] > 0
    assert Path(result["training"]["jax_export"]).is_file()
    # The sweep sends the fp32 artifact's cells to an attached GPU/TPU through this export.
    assert result["artifacts"]["fp32"]["jax_export"] == result["training"]["jax_export"]
    assert "jax_export" not in result["artifacts"]["int8"]
    int8 = result["artifacts"]["int8"]
    assert int8["status"] == "ok" and int8["quality"] >= 0.8
    assert abs(int8["quality_delta"]) <= 0.05  # against the fp32 jax2tf artifact
    assert "Keras" in result["artifacts"]["prune50+int8"]["error"]

    run = tmp_path / "bench"
    args = ["bench", int8["artifact"]["path"], "--profile", "host", "--threads", "1"]
    assert main([*args, "--preset", "quick", "--out", str(run), "--no-progress"]) == 0
    (record,) = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and record["metrics"]["latency_p50_ms"]["value"] > 0


def test_gpu_profile_is_local_only_when_a_matching_device_is_attached(monkeypatch) -> None:
    from accelbench.hardware_profiles import execution_mode, load_profile
    from accelbench.hardware_profiles.host import ATTACHED_ENV, gpus

    h100, a100, rpi4 = (load_profile(n) for n in ("nvidia-h100", "nvidia-a100", "rpi4"))
    if not gpus():  # this machine: no GPU, so nothing is faked
        monkeypatch.delenv(ATTACHED_ENV, raising=False)
        assert execution_mode(h100) == "projected"
    monkeypatch.setenv(ATTACHED_ENV, "none")
    assert execution_mode(h100) == "projected"
    monkeypatch.setenv(ATTACHED_ENV, "NVIDIA H100 80GB HBM3")
    assert execution_mode(h100) == "local"
    assert execution_mode(a100) == "projected"  # another chip is not this one
    assert execution_mode(rpi4) == "emulated"
    assert jax_models.accelerator_profile("NVIDIA H100 80GB HBM3").name == "nvidia-h100"
    assert jax_models.accelerator_profile("NVIDIA L40S") is None  # not an L4


@pytest.mark.slow
def test_accel_check_quick_runs_on_cpu_and_writes_json(tmp_path) -> None:
    out = tmp_path / "accel.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "accel_check.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=_fresh_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["label"] == "cpu" and report["device_count"] == 2
    assert {r["model"] for r in report["training"]} == set(jax_models.BASES)
    assert all(r["compile_s"] > 0 and r["examples_per_s"] > 0 for r in report["training"])
    assert report["data_parallel"]["devices"] == 2
    assert report["data_parallel"]["scaling_efficiency"] > 0
    assert all(r["samples_per_s"] > 0 for r in report["inference"])
    assert "digits_cnn_jax" in done.stdout and "MFU" in done.stdout
