"""The JAX path to an attached GPU/TPU, as far as a CPU-only machine can check it: which cells
run JAX on the CPU, and FLOPs counted from the CPU compilation whatever device runs the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from accelbench.models import jax_models
from accelbench.runtimes.jax_runtime import FLOPS_SOURCE, JaxRuntime, cpu_flops

H100 = "NVIDIA H100 80GB HBM3"
REPO = Path(__file__).resolve().parents[1]
# digits_cnn_jax: 3x3 SAME convolutions on 8x8 (1 -> 16 -> 32 channels), 2x2 max pooling,
# dense 512 -> 64 -> 10. A SAME 3x3 kernel on 8x8 has 22 x 22 = 484 taps inside the image (the
# padding taps are not computed), so its multiply-adds are 484 x C_in x C_out.
DIGITS_MACS = 484 * 1 * 16 + 484 * 16 * 32 + 512 * 64 + 64 * 10
DIGITS_FLOPS_FLOOR = 2 * DIGITS_MACS  # 577,920; bias, ReLU, pooling and softmax add ~1%
# XLA's CPU count at batch 1 (jax 0.10 here; 0.11.2 gave the same on the H100 machine's CPU
# backend, against 68,452 from its GPU compilation).
DIGITS_XLA_CPU_FLOPS = 585_787


def _digits_params() -> dict:
    """digits_cnn_jax's initial parameters with non-zero biases, as after training: XLA folds
    away the addition of an all-zero constant, which would drop the bias FLOPs from the count."""
    params = jax_models.init_params("digits_cnn_jax", seed=0)
    for layer in params.values():
        layer["b"][:] = 0.01
    return params


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory) -> Path:
    """digits_cnn_jax exported as the runner exports it: dynamic batch, lowered for CPU, CUDA
    and TPU."""
    path = tmp_path_factory.mktemp("digits") / "digits.jaxexport"
    return jax_models.export_jax("digits_cnn_jax", _digits_params(), path)


def test_flops_per_sample_is_the_cpu_compilations_count(digits_export: Path) -> None:
    import jax

    runtime = JaxRuntime(digits_export)
    flops = runtime.flops_per_sample()
    # The model's whole work: a GPU's cost analysis, blind to cuDNN convolutions, gave ~68k.
    assert DIGITS_FLOPS_FLOOR <= flops <= 1.02 * DIGITS_FLOPS_FLOOR
    assert flops == DIGITS_XLA_CPU_FLOPS
    # The same figure at any batch (per sample), and from the exported program as from the
    # JAX function it was exported from.
    batch = jax.ShapeDtypeStruct((16, 8, 8, 1), np.float32)
    exported = jax.export.deserialize(bytearray(digits_export.read_bytes()))
    assert cpu_flops(exported.call, batch) == 16 * flops
    predict = jax_models.predict_fn("digits_cnn_jax", _digits_params())
    assert cpu_flops(predict, batch) == 16 * flops
    # Counted on the CPU whatever the default device: the same under jax.default_device(cpu).
    with jax.default_device(jax.devices("cpu")[0]):
        assert runtime.flops_per_sample() == flops
    info = runtime.info()
    assert info["flops_per_sample"] == flops and info["flops_source"] == FLOPS_SOURCE


def test_cpu_flops_is_none_not_a_failure_without_a_cpu_lowering() -> None:
    import jax

    def matmul(x):
        return x @ np.ones((8, 4), np.float32)

    aval = jax.ShapeDtypeStruct((1, 8), np.float32)
    exported = jax.export.export(jax.jit(matmul), platforms=("cuda",))(aval)
    assert cpu_flops(exported.call, aval) is None
    assert cpu_flops(matmul, aval) == 2 * 8 * 4


def test_data_parallel_training_counts_the_whole_batch_once(tmp_path: Path) -> None:
    """One step's FLOPs, counted on the CPU for the global batch, are the same on one device as
    on two (a per-device count scaled by the devices adds the collectives), and are the forward
    pass's ~3x (forward, backward, optimizer)."""
    script = tmp_path / "fit.py"
    script.write_text(
        "import json, sys\n"
        "from accelbench.models import jax_models\n"
        "f, _ = jax_models.fit('digits_cnn_jax', seed=0, epochs=1, devices=int(sys.argv[1]))\n"
        "print(json.dumps({k: f[k] for k in ('flops_per_step', 'flops_source', 'devices')}))\n"
    )
    # A fresh process each: two CPU devices are forced before JAX loads (XLA_FLAGS).
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    figures = {}
    for devices in (1, 2):
        done = subprocess.run(
            [sys.executable, str(script), str(devices)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        figures[devices] = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures[2]["devices"] == 2
    assert figures[1]["flops_per_step"] == figures[2]["flops_per_step"]
    assert figures[1]["flops_source"] == figures[2]["flops_source"] == FLOPS_SOURCE
    per_sample = figures[1]["flops_per_step"] / 64  # the default global batch
    assert 2.5 * DIGITS_FLOPS_FLOOR < per_sample < 3.5 * DIGITS_FLOPS_FLOOR


def test_only_an_attached_accelerator_cell_keeps_jax_off_the_cpu(monkeypatch) -> None:
    from accelbench.runner.suite import on_accelerator
    from accelbench.runner.worker import pin_jax_platform

    assert on_accelerator("gpu", "local") and on_accelerator("tpu", "local")
    assert not on_accelerator("gpu", "projected") and not on_accelerator("cpu", "local")
    assert not on_accelerator("edge-cpu", "emulated")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert pin_jax_platform(accelerated=True) is None  # JAX picks the accelerator
    assert pin_jax_platform(accelerated=False) == "cpu"


def test_host_cell_runs_jax_on_the_cpu_beside_an_attached_gpu(
    digits_export: Path, tmp_path: Path, monkeypatch
) -> None:
    """bench on nvidia-h100,host where an H100 is (said to be) attached: the host cell runs JAX
    on the CPU, the H100 cell is left to JAX's own choice, which here, without a GPU, is the
    CPU, so that cell fails rather than report a CPU figure under the H100's name."""
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(digits_export),
        "--profile",
        "nvidia-h100,host",
        "--threads",
        "1",
        "--scenario",
        "single-stream",
        "--out",
        str(out),
        "--no-progress",
        env={"ACCELBENCH_ATTACHED_DEVICES": H100},
    )
    records = {
        r["profile"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())
    }
    host, h100 = records["host"], records["nvidia-h100"]
    assert host["status"] == "ok", host["error"]
    info = host["runtime_info"]
    assert info["backend"] == "cpu" and info["jax_platforms"] == "cpu"
    assert info["flops_source"] == FLOPS_SOURCE
    assert DIGITS_FLOPS_FLOOR <= info["flops_per_sample"] <= 1.02 * DIGITS_FLOPS_FLOOR
    assert h100["execution"] == "local" and h100["runtime"] == "jax"
    if h100["status"] == "ok":  # a machine with a GPU JAX can use
        assert h100["runtime_info"]["backend"] != "cpu"
        assert h100["runtime_info"]["jax_platforms"] is None
        assert h100["metrics"]["mfu"]["value"] > 0
    else:
        assert proc.returncode == 1
        assert "JAX runs on the CPU" in h100["error"], h100["error"]
        assert "JAX_PLATFORMS=unset" in h100["error"], h100["error"]
