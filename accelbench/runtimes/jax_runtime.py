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
# Where every FLOP count of a JAX function comes from (see `cpu_flops`).
FLOPS_SOURCE = "XLA CPU cost analysis"


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

    @property
    def backend(self) -> str:
        """The platform JAX runs this artifact on: 'cpu', 'gpu' or 'tpu'."""
        return self._jax.default_backend()

    def info(self) -> dict[str, Any]:
        device = self._jax.devices()[0]
        flops = self.flops_per_sample()
        return {
            "runtime": self.name,
            "package": "jax",
            "version": self._jax.__version__,
            "backend": self.backend,
            "device_kind": device.device_kind,
            "jax_platforms": os.environ.get("JAX_PLATFORMS"),
            "exported_platforms": list(self._exported.platforms),
            "threads": self.threads,
            "threads_limited_by": self._threads_by,
            "flops_per_sample": flops,
            "flops_source": FLOPS_SOURCE if flops is not None else None,
            "device_memory_peak_bytes": peak_memory_bytes(self._jax.devices()),
        }

    def flops_per_sample(self) -> float | None:
        """FLOPs of one sample (batch 1 where the batch is free), counted by `cpu_flops`
        whatever backend runs the artifact; None where the export has no CPU lowering."""
        jax = self._jax
        avals = [
            jax.ShapeDtypeStruct(tuple(1 if d == -1 else d for d in s.shape), np.dtype(s.dtype))
            for s in self._inputs
        ]
        batch = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else 1
        flops = cpu_flops(self._exported.call, *avals)
        return None if flops is None else flops / max(1, batch)

    def close(self) -> None:
        self._call = None


def open_jax(
    artifact: str | Path,
    *,
    runtime: str | None,
    kind: str,
    threads: int | None,
    xnnpack: bool,
) -> JaxRuntime:
    """The registry's factory for runtime 'jax'."""
    return JaxRuntime(artifact, threads=threads)


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


def cpu_flops(fn: Callable[..., Any], *avals: Any) -> float | None:
    """FLOPs of one call of ``fn`` on ``avals`` (``jax.ShapeDtypeStruct``s, no shardings),
    from XLA's cost analysis of its **CPU** compilation, whatever backend runs ``fn``; None
    where the CPU cannot compile it or has no figure (a figure for a record, never a failure).

    Why the CPU: the cost analysis counts the HLO ops it knows, and on a GPU convolutions (and
    some matmuls and fusions) become cuDNN/cuBLAS custom calls that it counts as 0 FLOPs: the
    digits CNN counted ~68k FLOPs/sample on an H100 against ~0.58M on the CPU, so MFU came
    out ~8.6x too low. The CPU compilation keeps them as ops and counts the model's work, which
    is the same on every device. It is compiled under ``jax.default_device(cpu)`` rather than
    lowered with ``lowering_platforms=("cpu",)``, since a program lowered for the CPU may not
    compile on a CUDA client; ``Lowered.cost_analysis()`` is not used, as it fails on
    shape-polymorphic exports. A data-parallel step is counted whole (the global batch, one
    device), so its figure needs no per-device scaling.
    """
    import jax

    try:
        with jax.default_device(jax.devices("cpu")[0]):
            compiled = jax.jit(fn).lower(*avals).compile()
    except Exception:  # noqa: BLE001 - e.g. an export lowered for cuda only
        return None
    return compiled_flops(compiled)


def compiled_flops(compiled: Any) -> float | None:
    """FLOPs of one call of a compiled JAX function (``jit(f).lower(...).compile()``) on the
    device it was compiled for, from XLA's cost analysis (see `cpu_flops` for which to use)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends have no cost model
        return None
    entries = analysis if isinstance(analysis, list | tuple) else [analysis]
    flops = sum(float((e or {}).get("flops", 0.0)) for e in entries)
    return flops if flops > 0 else None


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
