"""Measured peak figures of this host (fp32, int8, memory bandwidth), their per-host cache, and
the host as a profile with them (detect_host)."""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.hardware_profiles.host import (
    available_cores,
    cpu_info,
    host_fingerprint_id,
    installed_runtimes,
    memory_bytes,
)
from accelbench.hardware_profiles.schema import HardwareProfile

CALIBRATION_FILE = "calibration.json"

# Matrix sizes: large enough to leave the per-call overhead behind, small enough that one call
# takes milliseconds on a 2-core VM, so a 3-second budget still gets many samples.
_FP32_N = 1024
_INT8_M = _INT8_K = _INT8_N = 512


@dataclass(frozen=True)
class Calibration:
    """This host's measured capability; ``methods`` says how each figure was measured."""

    host_fingerprint_id: str
    measured_at: str
    fp32_gflops: float
    int8_gops: float | None
    memory_bandwidth_gbps: float
    threads: int
    seconds: float
    methods: dict[str, str] = field(default_factory=dict)

    def peak_ops_per_s(self, precision: str) -> float | None:
        """Measured operations per second at a profile precision (fp16/bf16 run as fp32 here)."""
        if precision == "int8":
            return None if self.int8_gops is None else self.int8_gops * 1e9
        return self.fp32_gflops * 1e9

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir() -> Path:
    """``$ACCELBENCH_CACHE_DIR``, else ``~/.cache/accelbench``."""
    configured = os.environ.get("ACCELBENCH_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "accelbench"


def calibrate(seconds: float = 3.0, *, save: bool = True) -> Calibration:
    """Measure this host for about ``seconds`` seconds and (by default) cache the result."""
    import numpy as np

    if not (seconds > 0 and math.isfinite(seconds)):  # NaN fails both
        raise UsageError(
            f"seconds must be a positive, finite number, got {seconds:g}; give e.g. --seconds 3"
        )
    started = time.perf_counter()
    threads = available_cores()
    methods: dict[str, str] = {}

    fp32_gflops = _fp32_matmul_gflops(np, seconds * 0.35)
    methods["fp32_gflops"] = (
        f"numpy float32 matmul {_FP32_N}x{_FP32_N}x{_FP32_N} (BLAS, {threads} cores available), "
        "best of repeated runs, 2*n^3 FLOPs each"
    )

    int8_gops: float | None
    try:
        int8_gops, how = _litert_int8_fc_gops(np, seconds * 0.35, threads)
        methods["int8_gops"] = how
    except Exception as exc:  # noqa: BLE001 - any LiteRT failure falls back to the labelled method
        int8_gops = _numpy_int8_gops(np, seconds * 0.1)
        methods["int8_gops"] = (
            "numpy int8 inputs widened to int32 matmul (no BLAS; a lower bound, far below what "
            f"int8 kernels reach) because the LiteRT measurement failed: {exc}"
        )

    bandwidth, how = _copy_bandwidth_gbps(np, seconds * 0.3, threads)
    methods["memory_bandwidth_gbps"] = how

    calibration = Calibration(
        host_fingerprint_id=host_fingerprint_id(),
        measured_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        fp32_gflops=round(fp32_gflops, 3),
        int8_gops=None if int8_gops is None else round(int8_gops, 3),
        memory_bandwidth_gbps=round(bandwidth, 3),
        threads=threads,
        seconds=round(time.perf_counter() - started, 3),
        methods=methods,
    )
    if save:
        save_calibration(calibration)
    return calibration


def load_calibration() -> Calibration | None:
    """The cached calibration of this host, or None (none cached, another host's, or unreadable)."""
    entry = _read_cache().get(host_fingerprint_id())
    if not isinstance(entry, dict):
        return None
    try:
        return Calibration(**entry)
    except TypeError:
        return None  # written by another version of accelbench: measure again


def save_calibration(calibration: Calibration) -> Path:
    """Store ``calibration`` under its host id, keeping other hosts' entries (a shared home)."""
    path = cache_dir() / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _read_cache()
    entries[calibration.host_fingerprint_id] = calibration.to_dict()
    from accelbench.records import write_atomic  # pydantic: only when a calibration is saved

    return write_atomic(path, json.dumps(entries, indent=2, sort_keys=True))


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / CALIBRATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _best_seconds(run: Callable[[], object], budget_s: float, min_runs: int = 3) -> float:
    """The fastest of repeated runs within ``budget_s``: peak capability, not typical load."""
    run()  # warm-up: first-touch page faults, thread pool start, kernel selection
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    runs = 0
    while runs < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def _fp32_matmul_gflops(np: Any, budget_s: float) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((_FP32_N, _FP32_N), dtype=np.float32)
    b = rng.standard_normal((_FP32_N, _FP32_N), dtype=np.float32)
    out = np.empty_like(a)
    best = _best_seconds(lambda: np.matmul(a, b, out=out), budget_s)
    return 2 * _FP32_N**3 / best / 1e9


def _numpy_int8_gops(np: Any, budget_s: float) -> float:
    n = 256
    rng = np.random.default_rng(0)
    a = rng.integers(-127, 128, (n, n), dtype=np.int8)
    b = rng.integers(-127, 128, (n, n), dtype=np.int8)
    best = _best_seconds(lambda: a.astype(np.int32) @ b.astype(np.int32), budget_s)
    return 2 * n**3 / best / 1e9


def _litert_int8_fc_gops(np: Any, budget_s: float, threads: int) -> tuple[float, str]:
    from ai_edge_litert.interpreter import Interpreter

    m, k, n = _INT8_M, _INT8_K, _INT8_N
    interpreter = Interpreter(
        model_content=int8_fully_connected_model(m, k, n), num_threads=threads
    )
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    interpreter.set_tensor(detail["index"], rng.integers(-127, 128, (m, k), dtype=np.int8))
    best = _best_seconds(interpreter.invoke, budget_s)
    # A node named DELEGATE means the default delegate (XNNPACK) took the op over.
    delegated = any(
        "delegate" in str(op["op_name"]).lower() for op in interpreter._get_ops_details()
    )
    how = (
        f"LiteRT int8 FULLY_CONNECTED {m}x{k} by {k}x{n} ({threads} threads, "
        f"{'XNNPACK delegate' if delegated else 'built-in kernel'}), best of repeated invokes, "
        "2*m*k*n ops each"
    )
    return 2 * m * k * n / best / 1e9, how


def int8_fully_connected_model(m: int, k: int, n: int, seed: int = 0) -> bytes:
    """A one-op full-integer .tflite: int8 [m,k] x int8 weights [n,k] -> int8 [m,n].

    Written with the flatbuffer schema that ships inside ai-edge-litert, so no TensorFlow.
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as fb

    rng = np.random.default_rng(seed)
    in_scale, w_scale, out_scale = 0.05, 0.02, 0.5

    def quant(scale: float) -> Any:
        q = fb.QuantizationParametersT()
        q.scale = [scale]
        q.zeroPoint = [0]
        return q

    def tensor(name: str, shape: list[int], dtype: int, buffer: int, scale: float) -> Any:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, dtype, buffer
        t.quantization = quant(scale)
        return t

    def buffer(data: Any = None) -> Any:
        b = fb.BufferT()
        if data is not None:
            b.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        return b

    weights = rng.integers(-127, 128, (n, k), dtype=np.int8)  # symmetric: zero point 0
    bias = np.zeros(n, dtype=np.int32)

    subgraph = fb.SubGraphT()
    subgraph.tensors = [
        tensor("input", [m, k], fb.TensorType.INT8, 1, in_scale),
        tensor("weights", [n, k], fb.TensorType.INT8, 2, w_scale),
        tensor("bias", [n], fb.TensorType.INT32, 3, in_scale * w_scale),
        tensor("output", [m, n], fb.TensorType.INT8, 4, out_scale),
    ]
    subgraph.inputs, subgraph.outputs = [0], [3]
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = fb.FullyConnectedOptionsT()
    subgraph.operators = [op]

    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 4  # int8 per-tensor kernels

    model = fb.ModelT()
    model.version = 3
    model.description = "accelbench int8 calibration"
    model.operatorCodes = [code]
    model.subgraphs = [subgraph]
    model.buffers = [buffer(), buffer(), buffer(weights), buffer(bias), buffer()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _copy_bandwidth_gbps(np: Any, budget_s: float, threads: int) -> tuple[float, str]:
    from concurrent.futures import ThreadPoolExecutor

    # Well past any last-level cache, yet small enough for a memory-capped container.
    memory = memory_bytes()
    available = memory["cgroup_limit"] or memory["total"] or 0
    size = int(min(256 * 2**20, max(32 * 2**20, available // 16)))
    src = np.ones(size // 4, dtype=np.float32)
    dst = np.empty_like(src)
    # numpy releases the GIL while copying, so one thread per core streams in parallel.
    bounds = np.linspace(0, src.size, threads + 1, dtype=np.int64)
    chunks = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    with ThreadPoolExecutor(max_workers=threads) as pool:

        def copy_all() -> None:
            list(pool.map(lambda pair: np.copyto(pair[0], pair[1]), chunks))

        best = _best_seconds(copy_all, budget_s)
    how = (
        f"numpy array copy of {size // 2**20} MiB in {threads} threads, best of repeated "
        "copies, counting bytes read + bytes written (STREAM 'copy' convention)"
    )
    return 2 * size / best / 1e9, how


def detect_host() -> HardwareProfile:
    """This machine as a profile (execution local); peaks come from its cached calibration."""
    cpu = cpu_info()
    memory = memory_bytes()
    usable = memory["cgroup_limit"] or memory["total"]
    calibration = load_calibration()
    peak: dict[str, float] = {}
    sources: list[dict[str, Any]] = []
    bandwidth = None
    if calibration is not None:
        peak["fp32"] = round(calibration.fp32_gflops / 1e3, 6)
        if calibration.int8_gops is not None:
            peak["int8"] = round(calibration.int8_gops / 1e3, 6)
        bandwidth = calibration.memory_bandwidth_gbps
        measured = {
            "peak_compute.fp32": ("fp32_gflops", peak["fp32"]),
            "peak_compute.int8": ("int8_gops", peak.get("int8")),
            "memory_bandwidth_gbps": ("memory_bandwidth_gbps", bandwidth),
        }
        for figure, (key, value) in measured.items():
            if value is not None:
                how = calibration.methods.get(key, "measured")
                citation = f"accelbench calibrate, {calibration.measured_at}: {how}"
                sources.append({"figure": figure, "value": value, "url_or_citation": citation})
    sources.append(
        {
            "figure": "memory_gb",
            "value": round(usable / 2**30, 2),
            "url_or_citation": "detected: psutil total memory, or the cgroup limit if lower",
        }
    )
    is_arm = cpu["machine"].lower().startswith(("arm", "aarch"))
    return HardwareProfile(
        name="host",
        kind="edge-cpu" if is_arm else "cpu",
        vendor=cpu["cpu_vendor"],
        model=cpu["cpu_model"],
        cores=available_cores(),
        memory_gb=round(usable / 2**30, 2),
        peak_compute=peak,
        memory_bandwidth_gbps=bandwidth,
        supported_precisions=["fp32", "fp16", "bf16", "int8", "int16x8"],
        runtimes=installed_runtimes(),
        execution="local",
        sources=sources,
        notes=(
            "Detected at run time"
            + (
                f"; peaks measured by calibration {calibration.measured_at}"
                if calibration
                else "; peaks unknown until 'accelbench calibrate' runs"
            )
        ),
    )
