"""Fit a projection block to this host: time micro-kernels, fit the per-op model, write a profile.

The kernels (convolutions 1×1 and 3×3 over channel counts and strides, depthwise, fully
connected, add, pooling; fp32 and int8) are one-layer Keras models converted to .tflite and cached
under ``<cache>/microkernels/``. Each is timed with the runtime a cell uses (LiteRT with XNNPACK,
the given threads); the per-op model's efficiencies per op kind and precision and its per-op and
per-inference overheads are fitted to those times (scipy ``least_squares`` on log time), against
this host's calibrated peaks. This is nn-Meter's kernel-level approach (MobiSys 2021), with
accelbench's own per-op model.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from accelbench.errors import UsageError

CACHE_FOLDER = "microkernels"
# (name, layer, input height/width, input channels, layer arguments)
KERNELS: tuple[tuple[str, str, int, int, dict[str, Any]], ...] = (
    ("conv1x1-28-64", "conv", 28, 64, {"filters": 64, "kernel_size": 1}),
    ("conv1x1-14-256", "conv", 14, 256, {"filters": 256, "kernel_size": 1}),
    ("conv3x3-56-32", "conv", 56, 32, {"filters": 32, "kernel_size": 3}),
    ("conv3x3-28-64-s2", "conv", 28, 64, {"filters": 128, "kernel_size": 3, "strides": 2}),
    ("depthwise3x3-56-64", "depthwise", 56, 64, {"kernel_size": 3}),
    ("depthwise3x3-28-128-s2", "depthwise", 28, 128, {"kernel_size": 3, "strides": 2}),
    ("dense-1024", "dense", 1, 1024, {"units": 1024}),
    ("add-56-64", "add", 56, 64, {}),
    ("maxpool-56-64", "pool", 56, 64, {"pool_size": 2}),
)
PRECISIONS = ("fp32", "int8")
TIMED_RUNS = 30


def kernel_models() -> list[tuple[str, Path]]:
    """Every micro-kernel's .tflite, built on first use and cached."""
    folder = _cache() / CACHE_FOLDER
    wanted = [
        (f"{name}-{precision}", name, precision) for name, *_ in KERNELS for precision in PRECISIONS
    ]
    missing = [item for item in wanted if not (folder / f"{item[0]}.tflite").is_file()]
    if missing:
        _build(folder, missing)
    return [(key, folder / f"{key}.tflite") for key, _, _ in wanted]


def _cache() -> Path:
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir()


def _build(folder: Path, missing: list[tuple[str, str, str]]) -> None:
    import numpy as np

    from accelbench.keras_compat import legacy_keras

    try:
        keras = legacy_keras()
        import tensorflow as tf
    except ImportError as exc:
        raise UsageError(
            f"building the micro-kernels needs TensorFlow and tf_keras ({exc.name} is missing); "
            "install them to fit a profile"
        ) from None
    specs = {
        name: (layer, size, channels, kwargs) for name, layer, size, channels, kwargs in KERNELS
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, name, precision in missing:
        layer, size, channels, kwargs = specs[name]
        shape = (channels,) if layer == "dense" else (size, size, channels)
        inputs = keras.Input(shape=shape)
        if layer == "conv":
            x = keras.layers.Conv2D(padding="same", **kwargs)(inputs)
        elif layer == "depthwise":
            x = keras.layers.DepthwiseConv2D(padding="same", **kwargs)(inputs)
        elif layer == "dense":
            x = keras.layers.Dense(**kwargs)(inputs)
        elif layer == "add":
            x = keras.layers.Add()([inputs, keras.layers.ReLU()(inputs)])
        else:
            x = keras.layers.MaxPooling2D(**kwargs)(inputs)
        converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, x))
        if precision == "int8":

            def representative(shape: tuple[int, ...] = shape) -> Any:
                rng = np.random.default_rng(0)
                for _ in range(2):
                    yield [rng.random((1, *shape), dtype=np.float32)]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        (folder / f"{key}.tflite").write_bytes(converter.convert())


def time_kernel(path: Path, threads: int) -> float:
    """Median ms of one call, with the runtime and threads a cell uses."""
    from accelbench.runtimes import open_runtime
    from accelbench.runtimes.inputs import make_inputs

    runtime = open_runtime(path, "litert", threads=threads)
    try:
        sample = make_inputs(runtime.inputs(), 1, seed=0)[0]
        for _ in range(3):
            runtime.run(sample)
        times = []
        for _ in range(TIMED_RUNS):
            start = time.perf_counter()
            runtime.run(sample)
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        runtime.close()
    return statistics.median(times)


# The parameters fitted, with their start and bounds.
_FREE: dict[str, tuple[float, float, float]] = {
    **{
        f"efficiency.{kind}.{precision}": (0.3, 1e-3, 4.0)
        for kind in ("conv", "depthwise", "matmul", "pool", "other")
        for precision in PRECISIONS
    },
    "per_op_overhead_us": (5.0, 1e-3, 1000.0),
    "per_inference_overhead_us": (5.0, 1e-3, 1000.0),
    # A kernel timed again and again reads its weights from cache, faster than DRAM.
    "device_bandwidth_gbps": (20.0, 0.5, 2000.0),
}


def fit_projection(
    measured: list[tuple[Any, float]], profile: Any, threads: int
) -> tuple[dict[str, Any], list[tuple[str, float, float]]]:
    """The projection block that best fits ``measured`` (op table, ms) on ``profile``, and each
    kernel's (name, measured ms, projected ms)."""
    import numpy as np
    from scipy.optimize import least_squares

    from accelbench.hardware_profiles.projection import project
    from accelbench.hardware_profiles.schema import ProjectionParameters

    names = list(_FREE)
    start = np.log([_FREE[n][0] for n in names])
    bounds = (np.log([_FREE[n][1] for n in names]), np.log([_FREE[n][2] for n in names]))

    def block(x: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"efficiency": {}}
        for name, value in zip(names, x, strict=True):
            parts = name.split(".")
            if parts[0] == "efficiency":
                data["efficiency"].setdefault(parts[1], {})[parts[2]] = float(math.exp(value))
            else:
                data[name] = float(math.exp(value))
        return data

    def with_block(x: Any) -> Any:
        params = ProjectionParameters.model_validate(block(x))
        return profile.model_copy(update={"projection": params})

    def residuals(x: Any) -> Any:
        fitted = with_block(x)
        errors = [math.log(project(table, fitted).latency_ms / ms) for table, ms in measured]
        return np.array([*errors, *(0.01 * (x - start))])

    solution = least_squares(residuals, start, bounds=bounds)
    fitted = with_block(solution.x)
    rows = [(table.model, ms, project(table, fitted).latency_ms) for table, ms in measured]
    data = block(solution.x)
    for by_precision in data["efficiency"].values():
        for precision, value in by_precision.items():
            by_precision[precision] = float(f"{value:.4g}")
    for name in ("per_op_overhead_us", "per_inference_overhead_us", "device_bandwidth_gbps"):
        data[name] = float(f"{data[name]:.4g}")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    fitted_to = (
        f"fitted to: {len(measured)} micro-kernels timed on this host with LiteRT + XNNPACK, "
        f"{threads} threads, {when} (accelbench profiles fit)"
    )
    data = {
        "runtime": f"LiteRT + XNNPACK, {threads} threads",
        **data,
        "sources": {
            "efficiency": fitted_to,
            "per_op_overhead_us": fitted_to,
            "per_inference_overhead_us": fitted_to,
            "device_bandwidth_gbps": fitted_to,
        },
    }
    return data, rows


def fit_host_profile(name: str, threads: int) -> tuple[Path, list[tuple[str, float, float]]]:
    """Fit this host's projection block and write it as profile ``name``; its path and rows."""
    from accelbench.hardware_profiles import detect_host, fitted_profile_path
    from accelbench.hardware_profiles.calibrate import calibrate, load_calibration
    from accelbench.hardware_profiles.projection import OpTable
    from accelbench.hardware_profiles.schema import SLUG_PATTERN, profile_from_mapping

    if not re.match(SLUG_PATTERN, name) or name == "host":
        raise UsageError(
            f"profile name '{name}' is not usable; use lowercase letters, digits and hyphens, "
            "not 'host'"
        )
    if load_calibration() is None:
        calibrate()
    host = detect_host()
    measured = [
        (OpTable.from_tflite(path), time_kernel(path, threads)) for _, path in kernel_models()
    ]
    block, rows = fit_projection(measured, host, threads)
    data = host.model_dump(mode="json", exclude_none=True)
    residuals = ", ".join(f"{model} {pro / ms:.2f}" for model, ms, pro in rows)
    data.update(
        name=name,
        execution="projected",
        projection=block,
        notes=f"This host, fitted by accelbench profiles fit; projected / measured per kernel: "
        f"{residuals}",
    )
    profile_from_mapping(data, name)  # the same checks as any profile file
    path = fitted_profile_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path, rows
