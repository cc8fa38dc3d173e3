"""Standing in for a device on this host: thread, affinity and memory limits, and what it refuses.

``apply_emulation`` must run in a fresh worker process *before* numpy, TensorFlow, JAX or LiteRT
is imported: thread pools read their size once, when the library loads.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, Protocol

from accelbench.errors import UsageError
from accelbench.hardware_profiles.host import execution_mode
from accelbench.hardware_profiles.schema import FLOAT_PRECISIONS, HardwareProfile
from accelbench.runtimes.registry import RUNTIMES

# Variables the numeric libraries read for their thread-pool size at import time.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

# The profile precisions that can run a model of each graph precision label. A float16 .tflite
# dequantizes its weights and computes in fp32 where fp16 arithmetic is missing; a dynamic-range
# model computes with float activations.
_RUNNABLE_ON: dict[str, tuple[str, ...]] = {
    "fp32": ("fp32",),
    "fp16": ("fp16", "fp32"),
    "bf16": ("bf16", "fp32"),
    "int8": ("int8",),
    "int16x8": ("int16x8",),
    "dynamic": ("fp32",),
}


class GraphCostLike(Protocol):
    """What this package needs of a model's graph cost (``runtimes.tflite_cost.GraphCost``)."""

    precision: str
    is_full_integer: bool
    float_ops: list[str]


def apply_emulation(profile: HardwareProfile, threads: int | None) -> dict[str, Any]:
    """Limit this process to the profile's threads and memory; return what was applied.

    Threads: ``threads`` if given, else ``profile.emulation.threads``, else every core this
    process may use; capped at the cores available. The process is pinned to the first N
    allowed cores and the thread-count variables are set to N.

    Memory: ``profile.emulation.memory_mb`` is applied with ``RLIMIT_AS``, which caps *virtual*
    address space, not resident memory. Runtimes reserve far more address space than they touch
    (TensorFlow about 2 GB at import, JAX over 1 GB, a thread stack 8 MB each), so a cap fails
    them earlier than the real device's RAM would; an allocation past the cap raises
    MemoryError (or aborts native code) instead of swapping.
    """
    allowed = sorted(os.sched_getaffinity(0))
    emulation = profile.emulation
    wanted = threads if threads is not None else (emulation.threads if emulation else None)
    if wanted is not None and (not isinstance(wanted, int) or wanted <= 0):
        raise UsageError(f"threads is {wanted!r}; use a positive whole number of threads")

    applied: dict[str, Any] = {
        "profile": profile.name,
        "execution": execution_mode(profile),
        "available_cores": len(allowed),
        "threads_requested": wanted,
    }
    count = len(allowed) if wanted is None else min(wanted, len(allowed))
    cores = allowed[:count]
    if wanted is not None:
        os.sched_setaffinity(0, cores)
    applied["threads"] = count
    applied["threads_capped"] = wanted is not None and wanted > len(allowed)
    applied["cpu_affinity"] = cores

    env = {name: str(count) for name in THREAD_ENV_VARS}
    os.environ.update(env)
    applied["env"] = env

    memory_mb = emulation.memory_mb if emulation else None
    applied["memory_limit_mb"] = None
    if memory_mb is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 2**20
        if hard != resource.RLIM_INFINITY and hard < limit:
            limit = hard  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        applied["memory_limit_mb"] = limit // 2**20
        applied["memory_limit_kind"] = "RLIMIT_AS (virtual address space)"

    # Imported before this call, a library keeps the thread pool it sized at import.
    frameworks = ("numpy", *(info.module for info in RUNTIMES.values()))
    applied["frameworks_imported_before"] = [m for m in frameworks if m in sys.modules]
    return applied


def check_artifact_supported(profile: HardwareProfile, graph_cost: GraphCostLike) -> str | None:
    """Why ``profile`` cannot run a model with this graph cost, or None when it can."""
    supported = list(profile.supported_precisions)
    runs_float = any(p in FLOAT_PRECISIONS for p in supported)
    if not runs_float and not graph_cost.is_full_integer:
        float_ops = list(graph_cost.float_ops)
        only = " and ".join(supported)
        if float_ops:
            examples = ", ".join(list(dict.fromkeys(float_ops))[:3])
            found = f"{len(float_ops)} float ops (e.g. {examples})"
        else:
            found = f"no quantized integer ops (its precision is {graph_cost.precision})"
        return (
            f"{profile.name} runs full-integer {only} models only; this model has {found}; "
            "quantize it with full-integer int8"
        )
    precision = graph_cost.precision
    if precision == "mixed":
        needed = ("fp32", "int8")
        missing = [p for p in needed if p not in supported]
        if missing:
            return (
                f"{profile.name} lacks {', '.join(missing)}, which this mixed int8/float model "
                f"needs; convert it to one of {', '.join(supported)}"
            )
        return None
    runnable_on = _RUNNABLE_ON.get(precision)
    if runnable_on is None or any(p in supported for p in runnable_on):
        return None
    return (
        f"{profile.name} supports {', '.join(supported)}, not this {precision} model; "
        f"convert it to one of those precisions"
    )
