"""The accelerator check: JAX training and inference figures on whatever device JAX finds.

Runs in a few minutes on a machine with one GPU (or TPU): the JAX devices; digits_cnn_jax and
breast_cancer_mlp_jax trained on the first device (compile time apart from step time,
examples/s, model FLOPs utilization against the built-in profile of that chip); data-parallel
training across every local device with its scaling efficiency; and an inference-throughput
loop of the exported model through runtime 'jax'. Prints a table and writes the figures as JSON.

On a machine without an accelerator it runs the same on the CPU, labelled ``cpu``, with two
forced host devices for the data-parallel part and MFU against this host's calibrated peak:

    python scripts/accel_check.py --quick --out accel.json

``--compare-tf`` adds the Keras twins trained in TensorFlow (XLA off and on) for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOST_DEVICES = 2  # forced CPU devices (the CPU platform only reads it) for data parallelism
MODELS = ("digits_cnn_jax", "breast_cancer_mlp_jax")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="accel_check.json", help="JSON file of the figures")
    parser.add_argument("--quick", action="store_true", help="2 epochs, fp32 only, short loops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare-tf",
        action="store_true",
        help="also time the Keras twins in TensorFlow (first step vs steady step, XLA off/on)",
    )
    args = parser.parse_args(argv)
    from accelbench.models import jax_models

    started = time.perf_counter()
    if "jax" not in sys.modules:
        # Before JAX loads: a CPU-only host then has devices to run data parallelism on.
        jax_models.force_host_devices(HOST_DEVICES)
    import jax

    devices = jax.devices()
    platform, kind = devices[0].platform, devices[0].device_kind
    label = "cpu" if platform == "cpu" else kind
    profile = jax_models.accelerator_profile(kind) if platform != "cpu" else None
    epochs = 2 if args.quick else None
    precisions = ("fp32",) if args.quick or platform == "cpu" else ("fp32", "bfloat16")
    report: dict[str, Any] = {
        "label": label,
        "platform": platform,
        "device_kind": kind,
        "device_count": len(devices),
        "profile": profile.name if profile else ("host" if platform == "cpu" else None),
        "jax_version": jax.__version__,
        "quick": args.quick,
        "training": [],
        "data_parallel": None,
        "inference": [],
    }
    trained: dict[str, Any] = {}
    for name in MODELS:
        for precision in precisions:
            figures, params = jax_models.fit(
                name, seed=args.seed, epochs=epochs, precision=precision, devices=1
            )
            trained.setdefault(name, params)
            report["training"].append(_training_row(figures))
    if len(devices) > 1:
        one = next(r for r in report["training"] if r["model"] == MODELS[0])
        figures, _ = jax_models.fit(MODELS[0], seed=args.seed, epochs=epochs, devices=len(devices))
        row = _training_row(figures)
        row["scaling_efficiency"] = row["examples_per_s"] / (len(devices) * one["examples_per_s"])
        report["data_parallel"] = row
    # Inference runs the fp32 export: one peak for every row.
    peak = jax_models.device_peak_flops(platform, kind, "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in trained.items():
            path = jax_models.export_jax(name, params, Path(tmp) / f"{name}.jaxexport")
            for batch in (1, 256 if args.quick else 4096):
                report["inference"].append(
                    _inference(name, path, batch, 0.2 if args.quick else 3.0, peak)
                )
    if args.compare_tf:
        batch = report["training"][0]["batch_size"]
        report["tensorflow"] = [
            _tf_steps(jax_models.BASES[name], batch, args.seed, xla)
            for name in MODELS
            for xla in (False, True)
        ]
    report["wall_s"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    _print_table(report)
    print(f"figures: {args.out}")
    return 0


def _training_row(figures: dict[str, Any]) -> dict[str, Any]:
    # fmt: skip below: 19 names packed as a paragraph, not one per line.
    keep = (
        "model", "precision", "devices", "batch_size", "epochs", "quality", "reached_target",
        "compile_s", "step_time_median_s", "examples_per_s", "flops_per_step", "flops_source",
        "achieved_flops_per_s", "mfu", "peak_flops_per_s", "peak_source", "peak_memory_bytes",
        "time_to_target_s", "wall_s",
    )  # fmt: skip
    return {k: figures[k] for k in keep}


def _tf_steps(name: str, batch: int, seed: int, xla: bool, steps: int = 200) -> dict[str, Any]:
    """The Keras twin's train step as one ``tf.function`` (XLA off or on), the same work as the
    JAX step: its first call (tracing + graph or XLA compilation) apart from its steady-state
    step time, each step waited for, at the JAX models' batch size, on TF's default device."""
    import numpy as np

    from accelbench.keras_compat import legacy_keras
    from accelbench.models import get_spec

    keras = legacy_keras()
    import tensorflow as tf

    spec = get_spec(name)
    data = spec.load_data(seed=seed)
    model = spec.build(seed)
    optimizer = keras.optimizers.Adam(spec.learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=xla)
    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(data.x_train), (steps + 1, batch))
    batches = [(tf.constant(data.x_train[i]), tf.constant(data.y_train[i])) for i in index]
    t0 = time.perf_counter()
    step(*batches[0]).numpy()
    first_s = time.perf_counter() - t0
    times = []
    for x, y in batches[1:]:
        t0 = time.perf_counter()
        step(x, y).numpy()
        times.append(time.perf_counter() - t0)
    return {
        "model": name,
        "framework": "tensorflow",
        "xla": xla,
        "batch_size": batch,
        "first_step_s": first_s,
        "step_time_median_s": float(np.median(times)),
        "examples_per_s": batch * len(times) / sum(times),  # as for JAX: all steps but the first
    }


def _inference(
    name: str, path: Path, batch: int, budget_s: float, peak: tuple[float | None, str]
) -> dict[str, Any]:
    """Samples/s of the exported model at one batch size, timed here (runtimes never time);
    MFU against ``peak`` (``device_peak_flops``: FLOP/s and its source)."""
    import numpy as np

    from accelbench.runtimes.jax_runtime import JaxRuntime

    runtime = JaxRuntime(path)
    spec = runtime.inputs()[0]
    x = np.random.default_rng(0).random((batch, *spec.shape[1:]), dtype=np.float32)
    t0 = time.perf_counter()
    runtime.run([x])  # compiles for this batch size
    first_s = time.perf_counter() - t0
    calls, t0 = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - t0 < budget_s:
        runtime.run([x])
        calls += 1
    elapsed = time.perf_counter() - t0
    info = runtime.info()
    runtime.close()
    samples_per_s = calls * batch / elapsed
    flops = info.get("flops_per_sample")
    peak_flops, source = peak
    achieved = flops * samples_per_s if flops else None
    return {
        "model": name,
        "batch": batch,
        "first_call_s": first_s,
        "latency_ms": elapsed / calls * 1e3,
        "samples_per_s": samples_per_s,
        "flops_per_sample": flops,
        "flops_source": info.get("flops_source"),
        "achieved_flops_per_s": achieved,
        "mfu": achieved / peak_flops if achieved and peak_flops else None,
        "peak_source": source,
        "device_memory_peak_bytes": info.get("device_memory_peak_bytes"),
    }


def _print_table(report: dict[str, Any]) -> None:
    where = f"{report['label']} x{report['device_count']} (profile {report['profile']})"
    print(f"accelerator check on {where}, jax {report['jax_version']}")
    print(
        f"{'training':24} {'prec':9} {'dev':>3} {'quality':>7} {'compile s':>9} "
        f"{'step ms':>8} {'examples/s':>11} {'MFU':>7} {'scaling':>7}"
    )
    rows = list(report["training"])
    if report["data_parallel"]:
        rows.append(report["data_parallel"])
    for r in rows:
        scaling = r.get("scaling_efficiency")
        print(
            f"{r['model']:24} {r['precision']:9} {r['devices']:>3} {r['quality']:>7.3f} "
            f"{r['compile_s']:>9.2f} {r['step_time_median_s'] * 1e3:>8.3f} "
            f"{r['examples_per_s']:>11.0f} {_pct(r['mfu']):>7} "
            f"{'' if scaling is None else f'{scaling:.2f}':>7}"
        )
    for r in report.get("tensorflow", []):
        print(
            f"{r['model'] + (' xla' if r['xla'] else ''):24} {'tf fp32':9} {1:>3} {'':>7} "
            f"{r['first_step_s']:>9.2f} {r['step_time_median_s'] * 1e3:>8.3f} "
            f"{r['examples_per_s']:>11.0f}   (TensorFlow: compile s = first train step)"
        )
    print(f"{'inference':24} {'batch':>9} {'ms/call':>12} {'samples/s':>12} {'MFU':>7}")
    for r in report["inference"]:
        print(
            f"{r['model']:24} {r['batch']:>9} {r['latency_ms']:>12.3f} "
            f"{r['samples_per_s']:>12.0f} {_pct(r['mfu']):>7}"
        )
    print(
        f"MFU against: {report['training'][0]['peak_source']}; FLOPs from "
        f"{report['training'][0]['flops_source']}; wall {report['wall_s']:.1f} s"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
