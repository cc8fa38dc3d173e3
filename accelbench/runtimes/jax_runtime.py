"""The JAX runtime: a serialized ``jax.export`` artifact (.jaxexport), and a helper to write one.

JAX is imported here only, when a runtime is opened. Inputs are positional, named input_0,
input_1, …; a symbolic (shape-polymorphic) dimension is -1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.runtimes.base import FixedSpecsRuntime
from accelbench.runtimes.edge import TensorSpec, check_inputs

SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def _limit_threads(threads: int | None) -> str:
    """Apply a thread count before JAX starts, or say why it cannot be; returns how it holds."""
    if threads is None:
        return "unlimited"
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) == threads:
        return "cpu affinity"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if SINGLE_THREAD_FLAG in flags:
            return "xla flag"
        if "jax" not in sys.modules:
            os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()
            return "xla flag"
    # XLA's CPU client has no thread-count setting: only affinity bounds it.
    raise UsageError(
        f"runtime 'jax' cannot limit itself to {threads} threads in this process; restrict the "
        f"process to {threads} CPUs (a hardware profile's affinity) or leave threads unset"
    )


class JaxRuntime(FixedSpecsRuntime):
    """A .jaxexport file (``jax.export`` serialized), called through one jitted function."""

    name = "jax"

    def __init__(self, artifact: str | Path, *, threads: int | None = None) -> None:
        self.artifact = Path(artifact)
        self.threads = threads
        self._threads_by = _limit_threads(threads)
        import jax

        self._jax = jax
        try:
            self._exported = jax.export.deserialize(bytearray(self.artifact.read_bytes()))
        except Exception as err:  # a bad file fails inside the flatbuffer reader in many ways
            raise UsageError(
                f"{self.artifact} is not a serialized jax.export artifact ({type(err).__name__}); "
                "write it with save_jax_export or Exported.serialize()"
            ) from err
        exported = self._exported
        self._inputs = [_spec(f"input_{i}", i, aval) for i, aval in enumerate(exported.in_avals)]
        self._outputs = [_spec(f"output_{i}", i, aval) for i, aval in enumerate(exported.out_avals)]
        batch_dims = {s.shape[0] for s in self._inputs if s.shape}
        self.max_batch_size = None if not batch_dims or -1 in batch_dims else min(batch_dims)
        self._call = jax.jit(exported.call)

    def set_batch_size(self, n: int) -> None:
        self._check_batch_size(n, "export it with save_jax_export(..., dynamic_batch=True)")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        check_inputs(self._inputs, inputs, self.artifact.name)
        result = self._jax.block_until_ready(self._call(*inputs))
        leaves = self._jax.tree_util.tree_leaves(result)
        return [np.asarray(leaf) for leaf in leaves]

    def info(self) -> dict[str, Any]:
        device = self._jax.devices()[0]
        return {
            "runtime": self.name,
            "package": "jax",
            "version": self._jax.__version__,
            "backend": self._jax.default_backend(),
            "device_kind": device.device_kind,
            "exported_platforms": list(self._exported.platforms),
            "threads": self.threads,
            "threads_limited_by": self._threads_by,
            "flops_per_sample": self.flops_per_sample(),
            "device_memory_peak_bytes": peak_memory_bytes(self._jax.devices()),
        }

    def flops_per_sample(self) -> float | None:
        """FLOPs of one sample (batch 1 where the batch is free), from XLA's cost analysis."""
        jax = self._jax
        avals = [
            jax.ShapeDtypeStruct(tuple(1 if d == -1 else d for d in s.shape), np.dtype(s.dtype))
            for s in self._inputs
        ]
        batch = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else 1
        try:
            flops = compiled_flops(jax.jit(self._exported.call).lower(*avals).compile())
        except Exception:  # noqa: BLE001 - a figure for the record, never a reason to fail
            return None
        return None if flops is None else flops / max(1, batch)

    def close(self) -> None:
        self._call = None


def _spec(name: str, index: int, aval: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in aval.shape)
    return TensorSpec(name=name, shape=shape, dtype=np.dtype(aval.dtype).name, index=index)


def save_jax_export(
    fn: Callable[..., Any],
    example_inputs: Sequence[np.ndarray],
    path: str | Path,
    *,
    dynamic_batch: bool = False,
    platforms: Sequence[str] | None = None,
) -> Path:
    """Export fn for inputs shaped like example_inputs and write it to path (a .jaxexport).

    dynamic_batch=True makes dimension 0 of every input one symbolic batch size; platforms
    (e.g. ("cpu", "cuda")) defaults to the platform JAX runs on here.
    """
    import jax

    batch = jax.export.symbolic_shape("batch")[0] if dynamic_batch else None
    avals = [
        jax.ShapeDtypeStruct(
            (batch, *np.shape(x)[1:]) if batch is not None else np.shape(x), np.asarray(x).dtype
        )
        for x in example_inputs
    ]
    exported = jax.export.export(jax.jit(fn), platforms=platforms)(*avals)
    path = Path(path)
    path.write_bytes(exported.serialize())
    return path


def compiled_flops(compiled: Any, devices: int = 1) -> float | None:
    """FLOPs of one call of a compiled JAX function (``jit(f).lower(...).compile()``), from
    XLA's cost analysis; an SPMD program is analysed per device, so ``devices`` scales it."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends have no cost model
        return None
    entries = analysis if isinstance(analysis, list | tuple) else [analysis]
    flops = sum(float((e or {}).get("flops", 0.0)) for e in entries)
    return flops * devices if flops > 0 else None


def peak_memory_bytes(devices: Sequence[Any]) -> int | None:
    """The largest peak of device memory in use across ``devices``; None where the device does
    not report it (CPU devices)."""
    peaks = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # noqa: BLE001 - CPU devices raise or return None
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


def utilization_metrics(
    runtime_info: dict[str, Any], latency_p50_ms: float | None, profile: Any
) -> dict[str, Any]:
    """Achieved FLOP/s, model FLOPs utilization against ``profile``'s fp32 peak, and device
    memory, as record metrics, for a JAX cell that ran on an attached GPU/TPU; {} otherwise."""
    from accelbench.records import metric

    flops = runtime_info.get("flops_per_sample")
    if runtime_info.get("runtime") != "jax" or not flops or not latency_p50_ms:
        return {}
    achieved = flops / (latency_p50_ms / 1e3)
    metrics = {"achieved_flops_per_s": metric(achieved, "FLOP/s", "higher")}
    peak = profile.peak_ops_per_s("fp32") or profile.peak_ops_per_s("bf16")
    if peak:
        metrics["mfu"] = metric(achieved / peak, "fraction", "higher")
    memory = runtime_info.get("device_memory_peak_bytes")
    if memory is not None:
        metrics["device_memory_peak_bytes"] = metric(memory, "bytes", "lower")
    return metrics
