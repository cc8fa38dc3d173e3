"""A machine-speed canary: a short, fixed, CPU-bound workload timed beside each LoadGen cell.

On a shared machine (a cloud VM, a CI runner) the host's own speed drifts — other tenants, CPU
steal, frequency scaling — by tens of percent between runs minutes apart. A latency that moved
between two runs may be the code or the machine; the canary tells them apart. The worker times
it right before and right after a cell's LoadGen scenario, in the same process, thread pool and
CPU affinity as the cell, and `accelbench compare` divides the latency change by the canary's
change when the machine's speed moved (see ``accelbench.report.compare``).

Method (fixed, so that two runs time exactly the same work): one repetition is
``MATMUL_ITERS`` float32 64×64 matrix products into one buffer (small enough that BLAS stays on
one thread: OpenBLAS threads a GEMM only above 64³ multiply-adds) followed by a pure-Python
integer loop of ``PYTHON_ITERS`` steps (the interpreter's speed, which a small model's per-query
overhead is made of). A measurement is the median wall time of ``REPEATS`` repetitions after one
warm-up, so one preemption in a repetition does not move it: about 9 ms a repetition and 55–70 ms
a measurement (warm-up included) on a 2-core Xeon VM, twice per cell. It imports only numpy.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

MATMUL_SIZE = 64
MATMUL_ITERS = 1200
PYTHON_ITERS = 50_000
REPEATS = 5
METHOD = (
    f"median of {REPEATS} repetitions (after 1 warm-up) of {MATMUL_ITERS} float32 "
    f"{MATMUL_SIZE}x{MATMUL_SIZE} matmuls + a {PYTHON_ITERS}-step pure-Python loop, "
    "timed before and after the LoadGen scenario in the cell's worker"
)


def _workload(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> float:
    # Into a fixed buffer from fixed inputs: no allocation, no chained products (whose values
    # would drift into denormals, which are slow on x86).
    for _ in range(MATMUL_ITERS):
        np.matmul(a, b, out=out)
    acc = 0
    for i in range(PYTHON_ITERS):
        acc = (acc + i * 7) % 1_000_003
    return float(out[0, 0]) + acc


def measure(repeats: int = REPEATS) -> float:
    """The canary's time in milliseconds: median of `repeats` repetitions after one warm-up."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE)).astype(np.float32)
    b = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE)).astype(np.float32)
    out = np.empty_like(a)
    _workload(a, b, out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _workload(a, b, out)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(times))
