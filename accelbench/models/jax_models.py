"""The JAX reference models (plain JAX + optax): their layers, training on one device or
data-parallel across several, and export to .jaxexport (`accelbench.optimizers.jax_tflite`
converts them to .tflite through jax2tf).

Each JAX model is the same architecture, data, quality target and evaluation as a Keras
reference model (``BASES``); only the framework differs, so the two can be compared. JAX, optax
and TensorFlow are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.models.spec import ModelSpec

# JAX model -> the Keras reference model whose architecture, data and target it shares.
BASES = {"digits_cnn_jax": "digits_cnn", "breast_cancer_mlp_jax": "breast_cancer_mlp"}
# Layer plans mirroring `architectures.digits_cnn` and `architectures.tabular_mlp`: ReLU after
# every conv and dense layer; "logits" is the last dense layer (its width is the class count),
# and the exported model applies softmax to it, as the Keras models do.
_PLANS: dict[str, tuple[tuple[str, int], ...]] = {
    "digits_cnn_jax": (
        ("conv", 16),
        ("conv", 32),
        ("maxpool", 2),
        ("flatten", 0),
        ("dense", 64),
        ("logits", 0),
    ),
    "breast_cancer_mlp_jax": (("dense", 32), ("dense", 16), ("logits", 0)),
}
PRECISIONS = ("fp32", "bfloat16")
EXPORT_PLATFORMS = ("cpu", "cuda", "tpu")
FORCE_DEVICES_FLAG = "--xla_force_host_platform_device_count"
# Post-training converters a jax2tf graph can go through; the Keras-side steps (pruning,
# clustering, QAT) wrap Keras layers in tensorflow-model-optimization and cannot.
JAX_OPTIMIZATIONS = ("fp32", "dynamic", "float16", "int8", "int16x8")


def is_jax_model(name: str) -> bool:
    """True for the name of a JAX reference model."""
    return name in BASES


def derived_specs(base_specs: dict[str, ModelSpec]) -> list[ModelSpec]:
    """The JAX models' specs: their Keras twins' specs (data, metric, target, recipe) renamed,
    with ``build(seed)`` returning initial JAX parameters instead of a Keras model."""
    specs = []
    for name, base in BASES.items():
        twin = base_specs[base]
        specs.append(
            dataclasses.replace(
                twin,
                name=name,
                description=f"{twin.description}; in JAX + optax (same as {base})",
                build=partial(init_params, name),
                framework="jax",
            )
        )
    return specs


def jax_spec(name: str) -> ModelSpec:
    from accelbench.models import get_spec

    if not is_jax_model(name):
        raise UsageError(f"{name!r} is not a JAX reference model; choose one of {', '.join(BASES)}")
    return get_spec(name)


# ---------------------------------------------------------------------------------- the model


def init_params(name: str, seed: int = 0) -> dict[str, Any]:
    """Initial parameters (numpy float32): Glorot-uniform kernels and zero biases, as Keras."""
    spec = jax_spec(name)
    rng = np.random.default_rng(seed)
    shape = (1, *spec.input_shape)
    params: dict[str, Any] = {}
    for i, (kind, size) in enumerate(_PLANS[name]):
        if kind == "conv":
            fan_in, fan_out = 9 * shape[-1], 9 * size
            kernel_shape: tuple[int, ...] = (3, 3, shape[-1], size)
            shape = (*shape[:-1], size)
        elif kind in ("dense", "logits"):
            size = size or spec.num_classes
            fan_in, fan_out, kernel_shape = shape[-1], size, (shape[-1], size)
            shape = (shape[0], size)
        elif kind == "maxpool":
            shape = (shape[0], shape[1] // size, shape[2] // size, shape[3])
            continue
        else:  # flatten
            shape = (shape[0], int(np.prod(shape[1:])))
            continue
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params[f"layer{i}"] = {
            "w": rng.uniform(-limit, limit, kernel_shape).astype(np.float32),
            "b": np.zeros(size, np.float32),
        }
    return params


def parameter_count(params: Any) -> int:
    """Number of scalars in a parameter tree (nested dicts of arrays)."""
    if isinstance(params, dict):
        return sum(parameter_count(v) for v in params.values())
    return int(np.size(params))


def _logits(name: str, params: Any, x: Any, compute_dtype: Any) -> Any:
    import jax
    import jax.numpy as jnp

    x = x.astype(compute_dtype)
    for i, (kind, size) in enumerate(_PLANS[name]):
        layer = params.get(f"layer{i}")
        if kind == "conv":
            x = jax.lax.conv_general_dilated(
                x,
                layer["w"].astype(compute_dtype),
                (1, 1),
                "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            x = jax.nn.relu(x + layer["b"].astype(compute_dtype))
        elif kind == "maxpool":
            window = (1, size, size, 1)
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        else:
            x = x @ layer["w"].astype(compute_dtype) + layer["b"].astype(compute_dtype)
            if kind == "dense":
                x = jax.nn.relu(x)
    # The loss and the softmax run in float32 whatever the compute precision.
    return x.astype(jnp.float32)


def predict_fn(name: str, params: Any, precision: str = "fp32") -> Callable[[Any], Any]:
    """``f(x) -> class probabilities`` with ``params`` closed over (what is exported)."""
    import jax

    dtype = _compute_dtype(precision)
    return lambda x: jax.nn.softmax(_logits(name, params, x, dtype), axis=-1)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r} is not supported; use one of {PRECISIONS}")


def _compute_dtype(precision: str) -> Any:
    _check_precision(precision)
    import jax.numpy as jnp

    return jnp.bfloat16 if precision == "bfloat16" else jnp.float32


# ------------------------------------------------------------------------------- training


def train(
    name: str,
    *,
    seed: int,
    epochs: int | None = None,
    batch_size: int = 64,
    devices: int = 1,
    precision: str = "fp32",
    data: str | None = None,
) -> dict:
    """Train a JAX reference model and measure it; returns plain, JSON-able figures.

    ``quality``, ``target``, ``reached_target``, ``time_to_target_s`` (compile + training
    seconds, per-epoch evaluation excluded, to the end of the first epoch at the target; None
    if none), ``compile_s`` (tracing, lowering and XLA compilation of the train step, apart from
    the steps), ``step_times_s`` (every step, blocked until done), ``examples_per_s`` (steady
    state: all steps but the first), ``devices``, ``wall_s``, ``params`` (parameter count), and
    ``flops_per_step`` (the whole global batch, from XLA's cost analysis of the step compiled
    for the CPU whatever device trains, as ``flops_source`` says: see
    `jax_runtime.cpu_flops`), ``achieved_flops_per_s``, ``mfu`` against ``peak_flops_per_s``
    (``peak_source`` says whose), ``peak_memory_bytes`` (None where the device does not report
    it, as on CPU), ``platform``, ``device_kind``, ``history``.

    ``devices > 1`` is data parallelism: the global ``batch_size`` is split across the devices
    (so throughput scaling is comparable) and parameters are replicated. On a CPU-only host it
    needs ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX loads; this sets it
    when JAX is not yet imported, and raises UsageError if JAX already runs with fewer devices.
    """
    figures, _ = fit(
        name,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        devices=devices,
        precision=precision,
        data=data,
    )
    return figures


def fit(
    name: str,
    *,
    seed: int,
    epochs: int | None = None,
    batch_size: int = 64,
    devices: int = 1,
    precision: str = "fp32",
    data: str | None = None,
) -> tuple[dict, dict[str, Any]]:
    """`train`, also returning the trained parameters (numpy float32) for export."""
    spec = jax_spec(name)
    epochs = spec.epochs if epochs is None else epochs
    for label, value in (("epochs", epochs), ("batch_size", batch_size), ("devices", devices)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{label} must be a positive integer, got {value!r}; for example 2")
    if batch_size % devices:
        raise UsageError(
            f"batch_size {batch_size} does not split evenly over {devices} devices; use a "
            f"multiple of {devices}"
        )
    _check_precision(precision)  # before JAX loads
    jax = import_jax(devices)
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from accelbench.models.training import check_dataset, quality_from_scores
    from accelbench.runtimes.jax_runtime import FLOPS_SOURCE, cpu_flops, peak_memory_bytes

    dataset = spec.load_data(data, seed=seed)
    check_dataset(spec, dataset, origin=data or "the built-in data")
    steps_per_epoch = len(dataset.x_train) // batch_size
    if steps_per_epoch == 0:
        raise UsageError(
            f"batch_size {batch_size} is larger than the {len(dataset.x_train)} training "
            "samples; use a smaller batch"
        )
    started = time.perf_counter()
    used = jax.devices()[:devices]
    mesh = Mesh(np.array(used), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    by_batch = NamedSharding(mesh, PartitionSpec("data"))
    dtype = _compute_dtype(precision)

    def learning_rate(count: Any) -> Any:
        # The Keras recipe (models.training): cosine decay per epoch, from the spec's rate.
        epoch = count // steps_per_epoch
        return spec.learning_rate * 0.5 * (1.0 + jax.numpy.cos(jax.numpy.pi * epoch / epochs))

    optimizer = optax.adam(learning_rate, eps=1e-7)  # Keras' Adam epsilon

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        logits = _logits(name, params, x, dtype)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params = jax.device_put(init_params(name, seed), replicated)
    opt_state = jax.device_put(optimizer.init(params), replicated)
    rng = np.random.default_rng(seed)
    x_train = dataset.x_train
    y_train = dataset.y_train.astype(np.int32)

    def epoch_batches() -> list[tuple[Any, Any]]:
        # A fresh shuffle each epoch; the last partial batch is dropped so every step has the
        # same shape (one compilation) and splits evenly over the devices.
        order = rng.permutation(len(x_train))[: steps_per_epoch * batch_size]
        batches = order.reshape(steps_per_epoch, batch_size)
        return [
            (jax.device_put(x_train[b], by_batch), jax.device_put(y_train[b], by_batch))
            for b in batches
        ]

    t0 = time.perf_counter()
    batches = epoch_batches()
    placing_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = (
        jax.jit(step, out_shardings=(replicated, replicated, replicated), donate_argnums=(0, 1))
        .lower(params, opt_state, *batches[0])
        .compile()
    )
    compile_s = time.perf_counter() - t0
    # The whole global batch on the CPU, unsharded: a GPU's cost analysis misses its cuDNN
    # convolutions (see cpu_flops), and the one figure holds for any device count.
    abstract = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (params, opt_state, *batches[0])
    )
    flops_per_step = cpu_flops(step, *abstract)

    predict = jax.jit(lambda p, x: _logits(name, p, x, dtype))
    history: dict[str, list[float]] = {"loss": [], "quality": [], "elapsed_s": []}
    step_times: list[float] = []
    train_s = compile_s
    to_target = None
    for epoch in range(epochs):
        if epoch:
            t0 = time.perf_counter()
            batches = epoch_batches()
            placing_s = time.perf_counter() - t0
        train_s += placing_s
        losses = []
        for x, y in batches:
            t0 = time.perf_counter()
            params, opt_state, loss = compiled(params, opt_state, x, y)
            jax.block_until_ready((params, loss))
            step_times.append(time.perf_counter() - t0)
            losses.append(loss)
        train_s += sum(step_times[-len(batches) :])
        # Scoring the test split is not training time.
        scores = np.asarray(predict(params, dataset.x_test))
        quality = quality_from_scores(spec, scores, dataset.y_test, dataset.x_test)
        history["loss"].append(float(np.mean([float(v) for v in losses])))
        history["quality"].append(quality)
        history["elapsed_s"].append(train_s)
        if to_target is None and quality >= spec.target:
            to_target = train_s
    wall_s = time.perf_counter() - started

    steady = step_times[1:] or step_times
    examples_per_s = batch_size * len(steady) / sum(steady)
    median_step = float(np.median(steady))
    platform, kind = used[0].platform, used[0].device_kind
    peak, peak_source = device_peak_flops(platform, kind, precision, devices)
    achieved = flops_per_step / median_step if flops_per_step else None
    figures = {
        "model": name,
        "framework": "jax",
        "jax_version": jax.__version__,
        "metric": spec.metric,
        "quality": history["quality"][-1],
        "target": spec.target,
        "reached_target": to_target is not None,
        "time_to_target_s": to_target,
        "compile_s": compile_s,
        "step_times_s": step_times,
        "step_time_median_s": median_step,
        "examples_per_s": examples_per_s,
        "devices": devices,
        "platform": platform,
        "device_kind": kind,
        "wall_s": wall_s,
        "params": parameter_count(params),
        "epochs": epochs,
        "batch_size": batch_size,
        "precision": precision,
        "seed": seed,
        "flops_per_step": flops_per_step,
        "flops_source": FLOPS_SOURCE if flops_per_step else None,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak,
        "peak_source": peak_source,
        "mfu": achieved / peak if achieved and peak else None,
        "peak_memory_bytes": peak_memory_bytes(used),
        "history": history,
        "data_source": dataset.source,
    }
    host_params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    return figures, host_params


def import_jax(devices: int = 1) -> Any:
    """Import JAX with at least ``devices`` devices, forcing that many host (CPU) devices when
    JAX is not loaded yet; UsageError when it already runs with fewer."""
    if "jax" not in sys.modules and devices > 1:
        force_host_devices(devices)
    import jax

    if devices > 1 and not _backends_started(jax):
        # JAX is loaded but has not picked its devices yet: the config option still applies.
        jax.config.update("jax_num_cpu_devices", max(devices, jax.config.jax_num_cpu_devices))
    have = jax.devices()
    if len(have) < devices and have[0].platform != "cpu":
        raise UsageError(
            f"{devices} devices were asked for but this machine has {len(have)} "
            f"{have[0].platform} device(s); ask for at most {len(have)}"
        )
    if len(have) < devices:
        raise UsageError(
            f"{devices} devices were asked for but JAX runs with {len(have)} "
            f"{have[0].platform} device(s) in this process; run it in a fresh process (JAX reads "
            f"XLA_FLAGS={FORCE_DEVICES_FLAG}={devices} once, when it loads) or ask for fewer"
        )
    return jax


def force_host_devices(count: int) -> None:
    """Ask XLA for ``count`` CPU devices (``XLA_FLAGS``), which it reads once, when JAX loads.

    Only the CPU platform reads it: on a GPU/TPU host the accelerators stay the devices.
    """
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if FORCE_DEVICES_FLAG not in f]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{FORCE_DEVICES_FLAG}={count}"])


def _backends_started(jax: Any) -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True  # cannot tell: trust only the device count checked next


def device_peak_flops(
    platform: str, device_kind: str, precision: str, devices: int = 1
) -> tuple[float | None, str]:
    """Peak FLOP/s of ``devices`` devices and where the figure comes from.

    A GPU/TPU: the built-in profile whose chip matches ``device_kind``, at the precision's peak
    (bfloat16 -> bf16), times the devices. The CPU: this host's calibrated fp32 matmul rate
    (`hardware_profiles.calibrate`, measured once and cached) for the whole host, since host
    devices share its cores.
    """
    if platform == "cpu":
        from accelbench.hardware_profiles.calibrate import calibrate, load_calibration

        calibration = load_calibration() or calibrate()
        return calibration.fp32_gflops * 1e9, "host (calibrated fp32 matmul, all cores)"
    profile = accelerator_profile(device_kind)
    if profile is None:
        return None, f"no built-in profile matches {device_kind!r}"
    key = "bf16" if precision == "bfloat16" else "fp32"
    peak = profile.peak_ops_per_s(key) or profile.peak_ops_per_s("bf16")
    if peak is None:
        return None, f"profile {profile.name} publishes no {key} peak"
    return peak * devices, f"profile {profile.name} peak_compute.{key} x {devices}"


def accelerator_profile(device_kind: str) -> Any:
    """The built-in GPU/TPU profile whose chip is ``device_kind``, or None."""
    from accelbench.hardware_profiles import builtin_names, load_profile
    from accelbench.hardware_profiles.schema import device_matches

    for name in builtin_names():
        profile = load_profile(name)
        if device_matches(profile, device_kind):
            return profile
    return None


# ---------------------------------------------------------------------------------- export


def export_jax(name: str, params: Any, path: str | Path, *, precision: str = "fp32") -> Path:
    """Write ``params``' predict function as a .jaxexport (dynamic batch, lowered for CPU, CUDA
    and TPU) for runtime 'jax'."""
    from accelbench.runtimes.jax_runtime import save_jax_export

    spec = jax_spec(name)
    example = np.zeros((1, *spec.input_shape), np.float32)
    # Lowered for every platform JAX exports to, so one file serves a CPU, a GPU and a TPU host.
    return save_jax_export(
        predict_fn(name, params, precision),
        [example],
        path,
        dynamic_batch=True,
        platforms=EXPORT_PLATFORMS,
    )
