"""Fit a projection block to this host: time micro-kernels, fit the per-op model, write a profile.

The kernels (convolutions 1×1 and 3×3 over channel counts and strides, depthwise, fully
connected, add, pooling; fp32 and int8) are one-layer Keras models converted to .tflite and cached
under ``<cache>/microkernels/``. Each is timed with the runtime a cell uses (LiteRT with XNNPACK,
the given threads); the per-op model's efficiencies per op kind and precision, its per-op and
per-inference overheads and the rate of the copy of a call's input and output into and out of
the interpreter (the profile's link: a kernel's input and output are its graph's, where inside a
model only the model's own cross) are fitted to those times (scipy ``least_squares`` on log
time), against this host's calibrated peaks. This is nn-Meter's kernel-level approach (MobiSys
2021), with accelbench's own per-op model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from accelbench.errors import UsageError

CACHE_FOLDER = "microkernels"
# (name, layer, input height/width, input channels, layer arguments): the shapes of the layers of
# image classifiers, from the first 3-channel convolution to the 7×7 ones with a thousand channels,
# so that the efficiency's dependence on an op's size is seen, not extrapolated.
KERNELS: tuple[tuple[str, str, int, int, dict[str, Any]], ...] = (
    ("conv3x3-112-3-s2", "conv", 112, 3, {"filters": 32, "kernel_size": 3, "strides": 2}),
    ("conv3x3-56-32", "conv", 56, 32, {"filters": 32, "kernel_size": 3}),
    ("conv3x3-28-64-s2", "conv", 28, 64, {"filters": 128, "kernel_size": 3, "strides": 2}),
    ("conv3x3-14-128", "conv", 14, 128, {"filters": 128, "kernel_size": 3}),
    ("conv3x3-7-256", "conv", 7, 256, {"filters": 256, "kernel_size": 3}),
    ("conv1x1-56-16", "conv", 56, 16, {"filters": 64, "kernel_size": 1}),
    ("conv1x1-28-64", "conv", 28, 64, {"filters": 64, "kernel_size": 1}),
    ("conv1x1-28-128-s2", "conv", 28, 128, {"filters": 256, "kernel_size": 1, "strides": 2}),
    ("conv1x1-14-256", "conv", 14, 256, {"filters": 256, "kernel_size": 1}),
    ("conv1x1-7-1024", "conv", 7, 1024, {"filters": 256, "kernel_size": 1}),
    ("conv5x5-14-32", "conv", 14, 32, {"filters": 32, "kernel_size": 5}),
    ("depthwise3x3-112-32", "depthwise", 112, 32, {"kernel_size": 3}),
    ("depthwise3x3-56-64", "depthwise", 56, 64, {"kernel_size": 3}),
    ("depthwise3x3-28-128-s2", "depthwise", 28, 128, {"kernel_size": 3, "strides": 2}),
    ("depthwise3x3-14-512", "depthwise", 14, 512, {"kernel_size": 3}),
    ("depthwise5x5-7-1024", "depthwise", 7, 1024, {"kernel_size": 5}),
    ("dense-256", "dense", 1, 256, {"units": 256}),
    ("dense-1024", "dense", 1, 1024, {"units": 1024}),
    ("dense-2048-1000", "dense", 1, 2048, {"units": 1000}),
    ("conv1x1-112-24", "conv", 112, 24, {"filters": 48, "kernel_size": 1}),
    ("add-96-128", "add", 96, 128, {}),
    ("add-56-64", "add", 56, 64, {}),
    ("add-14-256", "add", 14, 256, {}),
    ("relu-56-64", "relu", 56, 64, {}),
    ("batchnorm-relu-28-128", "batchnorm", 28, 128, {}),
    ("swish-28-128", "swish", 28, 128, {}),
    ("concat-28-128", "concat", 28, 128, {}),
    ("maxpool-56-64", "pool", 56, 64, {"pool_size": 2}),
    ("avgpool3x3-28-128", "avgpool", 28, 128, {"pool_size": 3, "strides": 1, "padding": "same"}),
    ("mean-7-1024", "mean", 7, 1024, {}),
)
PRECISIONS = ("fp32", "int8")
# Interleaved timing: ROUNDS rounds, each calling every kernel twice (cold, then warm).
ROUNDS = 150


def kernel_models() -> list[tuple[str, Path]]:
    """Every micro-kernel's .tflite, built on first use and cached (in a folder named by a
    digest of the layer's definition, so that a changed kernel is built again)."""
    folder = _cache() / CACHE_FOLDER
    wanted = [
        (f"{spec[0]}-{precision}", spec[0], precision, _digest(spec))
        for spec in KERNELS
        for precision in PRECISIONS
    ]
    missing = [item for item in wanted if not _kernel_path(folder, item).is_file()]
    if missing:
        _build(folder, missing)
    return [(item[0], _kernel_path(folder, item)) for item in wanted]


def _digest(spec: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:8]


def _kernel_path(folder: Path, item: tuple[str, str, str, str]) -> Path:
    return folder / item[3] / f"{item[0]}.tflite"


def _cache() -> Path:
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir()


def _build(folder: Path, missing: list[tuple[str, str, str, str]]) -> None:
    import numpy as np

    from accelbench.keras_compat import legacy_keras, tflite_for_timing

    try:
        keras = legacy_keras()
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"building the micro-kernels needs TensorFlow and tf_keras ({exc.name} is missing); "
            "install them to fit a profile"
        ) from None
    specs = {
        name: (layer, size, channels, kwargs) for name, layer, size, channels, kwargs in KERNELS
    }
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for item in missing:
        _, name, precision, _ = item
        layer, size, channels, kwargs = specs[name]
        shape = (channels,) if layer == "dense" else (size, size, channels)
        inputs = keras.Input(shape=shape)
        # Two graph inputs, so that no other op runs beside the ADD or the CONCATENATION.
        second = keras.Input(shape=shape) if layer in ("add", "concat") else None
        if layer == "conv":
            x = keras.layers.Conv2D(padding="same", **kwargs)(inputs)
        elif layer == "depthwise":
            x = keras.layers.DepthwiseConv2D(padding="same", **kwargs)(inputs)
        elif layer == "dense":
            x = keras.layers.Dense(**kwargs)(inputs)
        elif layer == "add":
            x = keras.layers.Add()([inputs, second])
        elif layer == "concat":
            x = keras.layers.Concatenate()([inputs, second])
        elif layer == "relu":
            x = keras.layers.ReLU()(inputs)
        elif layer == "batchnorm":
            # Random statistics, so that the converter keeps the scale and shift.
            norm = keras.layers.BatchNormalization()
            x = keras.layers.ReLU()(norm(inputs))
            norm.set_weights([rng.random(w.shape) + 0.5 for w in norm.get_weights()])
        elif layer == "swish":
            x = keras.layers.Activation("swish")(inputs)
        elif layer == "avgpool":
            x = keras.layers.AveragePooling2D(**kwargs)(inputs)
        elif layer == "mean":
            x = keras.layers.GlobalAveragePooling2D()(inputs)
        else:
            x = keras.layers.MaxPooling2D(**kwargs)(inputs)
        feeds = [inputs] if second is None else [inputs, second]
        data = tflite_for_timing(keras.Model(feeds, x), precision)
        path = _kernel_path(folder, item)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def time_kernels(
    paths: list[Path], threads: int, rounds: int | None = None
) -> tuple[list[float], list[float]]:
    """Median ms of a cold and of a warm call of each kernel, with the runtime and threads a
    cell uses. Each round calls every kernel twice in turn: the first call finds the kernel's
    weights and input evicted by the other kernels (cold), the second finds them in cache (warm).
    Interleaving also spreads a shared machine's drift (up to 2× within a minute) over every
    kernel alike."""
    from accelbench.runtimes import open_runtime
    from accelbench.runtimes.inputs import make_inputs

    runtimes = []
    try:
        for path in paths:
            runtime = open_runtime(path, "litert", threads=threads)
            runtimes.append((runtime, make_inputs(runtime.inputs(), 1, seed=0)[0]))
            for _ in range(3):
                runtime.run(runtimes[-1][1])
        cold: list[list[float]] = [[] for _ in paths]
        warm: list[list[float]] = [[] for _ in paths]
        for _ in range(rounds or ROUNDS):
            for index, (runtime, sample) in enumerate(runtimes):
                for kept in (cold[index], warm[index]):
                    start = time.perf_counter()
                    runtime.run(sample)
                    kept.append((time.perf_counter() - start) * 1e3)
    finally:
        for runtime, _ in runtimes:
            runtime.close()
    return [statistics.median(k) for k in cold], [statistics.median(k) for k in warm]


# Bounds of the fitted parameters; their starts are read from the kernels' times.
_EFFICIENCY_BOUNDS = (1e-4, 50.0)
_WEIGHTS_HALF_BOUNDS = (1.0, 1e8)
# Kinds whose rate depends on the op's shape (its channels): W½ is fitted for them.
_SHAPED_KINDS = ("conv", "pointwise", "depthwise", "matmul")
_SCALARS: dict[str, tuple[float, float, float]] = {
    "per_op_overhead_us": (2.0, 1e-3, 1000.0),
    "per_inference_overhead_us": (2.0, 1e-3, 1000.0),
    # A kernel timed again and again reads its weights from cache, faster than DRAM.
    "device_bandwidth_gbps": (20.0, 0.5, 2000.0),
    # A call copies its input in and its output out of the interpreter: for a micro-kernel the
    # op's whole activations, inside a model only the model's input and output. Left in the op's
    # own time, it would make an op with large activations look up to 2-3 times slower than it
    # runs inside a model.
    "link_bandwidth_gbps": (10.0, 0.1, 2000.0),
}
# Fitted where cold calls are given: how fast a cold call's weights and input arrive, and a
# cold call's fixed extra cost (code and tables out of cache), which no byte count explains and
# which only the kernels' cold calls pay (it is not written to the profile).
_STREAM = {"weight_stream_gbps": (10.0, 0.1, 2000.0), "cold_call_us": (5.0, 1e-3, 1000.0)}
# Fitted where a core's cache size is given: the rate of an op's bytes beyond it (a large
# activation read or written through the outer caches or memory).
_SPILL = {"spill_bandwidth_gbps": (10.0, 0.1, 2000.0)}


def _free_parameters(
    measured: list[tuple[Any, float]], profile: Any
) -> dict[str, tuple[float, float, float]]:
    """Each parameter to fit, with its start and bounds: an efficiency (and, for the shaped
    kinds, a W½) per op kind and precision the kernels hold, started where each kernel's own
    rate puts it; then the overheads and the bandwidth."""
    from accelbench.hardware_profiles.projection import _PEAK_ORDER

    rates: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], list[float]] = {}
    for table, ms in measured:
        ops = [op for op in table.ops if op.flops]
        if not ops:
            continue
        main = max(ops, key=lambda op: op.flops)
        peak = next(
            (
                profile.peak_ops_per_s(p)
                for p in _PEAK_ORDER.get(main.precision, ("fp32",))
                if profile.peak_ops_per_s(p)
            ),
            None,
        )
        if not peak:
            continue
        key = (main.kind, main.precision)
        rates.setdefault(key, []).append(sum(op.flops for op in ops) / (peak * ms * 1e-3))
        sizes.setdefault(key, []).append(main.tap_weight_elements)
    free: dict[str, tuple[float, float, float]] = {}
    for (kind, precision), values in sorted(rates.items()):
        shaped = kind in _SHAPED_KINDS
        # W½ started at the kernels' median parameter count, where the shape factor is about ½.
        start = statistics.median(values) * (2.0 if shaped else 1.0)
        low, high = _EFFICIENCY_BOUNDS
        free[f"efficiency.{kind}.{precision}"] = (min(max(start, low * 10), high / 10), low, high)
        if shaped:
            half = statistics.median(sizes[(kind, precision)])
            low, high = _WEIGHTS_HALF_BOUNDS
            free[f"weights_half.{kind}.{precision}"] = (min(max(half, low), high), low, high)
    return {**free, **_SCALARS}


def core_cache_mb() -> float | None:
    """This host's level-2 cache per core in MB (Linux sysfs), or None where it is not known."""
    folder = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(folder.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", size)
        if level == "2" and match:
            scale = {"": 1e-6, "K": 1024e-6, "M": 1024**2 * 1e-6, "G": 1024**3 * 1e-6}
            return int(match[1]) * scale[match[2]]
    return None


def fit_projection(
    measured: list[tuple[Any, float]],
    profile: Any,
    threads: int,
    cold_ms: list[float] | None = None,
    cache_mb: float | None = None,
) -> tuple[dict[str, Any], list[tuple[str, float, float]]]:
    """The projection block that best fits ``measured`` (op table, warm ms) on ``profile``, and
    each kernel's (name, measured ms, projected ms).

    With ``cold_ms`` (each kernel's cold call), the weight stream is fitted too: a cold call
    takes the warm call's time plus its weights and input read at that rate. A projection then
    adds each op's weights at that rate, as in a model, where an op's input is in cache (the op
    before wrote it) and its weights are not. A cold call's fixed extra cost (code and tables
    out of cache) is fitted beside it and left out of the profile: no byte count explains it.
    With ``cache_mb`` (a core's own cache), only the bytes that fit in it count as arriving cold:
    a kernel whose weights exceed it streams them on the warm call too."""
    import numpy as np
    from scipy.optimize import least_squares

    from accelbench.hardware_profiles.projection import project
    from accelbench.hardware_profiles.schema import ProjectionParameters

    free = _free_parameters(measured, profile)
    if cold_ms is not None:
        free.update(_STREAM)
    if cache_mb:
        free.update(_SPILL)
    names = list(free)
    start = np.log([free[n][0] for n in names])
    bounds = (np.log([free[n][1] for n in names]), np.log([free[n][2] for n in names]))

    def block(x: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"efficiency": {}, "weights_half": {}}
        for name, value in zip(names, x, strict=True):
            parts = name.split(".")
            if len(parts) == 3:
                data[parts[0]].setdefault(parts[1], {})[parts[2]] = float(math.exp(value))
            else:
                data[name] = float(math.exp(value))
        return data

    def with_block(x: Any) -> Any:
        data = block(x)
        data.pop("weight_stream_gbps", None)  # a warm call reads its weights from cache
        data.pop("cold_call_us", None)
        if cache_mb:
            data["cache_mb"] = cache_mb
        params = ProjectionParameters.model_validate(data)
        return profile.model_copy(update={"projection": params})

    cache_bytes = cache_mb * 1e6 if cache_mb else math.inf
    cold_bytes = [
        min(sum(op.weight_bytes + op.input_bytes for op in t.ops), cache_bytes) for t, _ in measured
    ]

    def residuals(x: Any) -> Any:
        fitted = with_block(x)
        warm = [project(table, fitted).latency_ms for table, _ in measured]
        errors = [math.log(pro / ms) for pro, (_, ms) in zip(warm, measured, strict=True)]
        if cold_ms is not None:
            stream = math.exp(x[names.index("weight_stream_gbps")]) * 1e9
            cold_call_ms = math.exp(x[names.index("cold_call_us")]) * 1e-3
            errors += [
                math.log((pro + cold_call_ms + moved / stream * 1e3) / ms)
                for pro, moved, ms in zip(warm, cold_bytes, cold_ms, strict=True)
            ]
        return np.array([*errors, *(0.01 * (x - start))])

    solution = least_squares(residuals, start, bounds=bounds)
    fitted = with_block(solution.x)
    rows = [(table.model, ms, project(table, fitted).latency_ms) for table, ms in measured]
    data = block(solution.x)
    data.pop("cold_call_us", None)
    for group in ("efficiency", "weights_half"):
        for by_precision in data[group].values():
            for precision, value in by_precision.items():
                by_precision[precision] = float(f"{value:.4g}")
    if cache_mb:
        data["cache_mb"] = cache_mb
    for name, value in data.items():
        if isinstance(value, float):
            data[name] = float(f"{value:.4g}")
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
            "weights_half": fitted_to,
            "per_op_overhead_us": fitted_to,
            "per_inference_overhead_us": fitted_to,
            "device_bandwidth_gbps": fitted_to,
            "link_bandwidth_gbps": fitted_to,
            **({"weight_stream_gbps": fitted_to} if cold_ms is not None else {}),
            **(
                {
                    "cache_mb": "detected: the level-2 cache of one core (Linux sysfs)",
                    "spill_bandwidth_gbps": fitted_to,
                }
                if cache_mb
                else {}
            ),
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
    paths = [path for _, path in kernel_models()]
    cold, warm = time_kernels(paths, threads)
    measured = list(zip(map(OpTable.from_tflite, paths), warm, strict=True))
    block, rows = fit_projection(measured, host, threads, cold_ms=cold, cache_mb=core_cache_mb())
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
