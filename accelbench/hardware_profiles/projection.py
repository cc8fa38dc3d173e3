"""Per-op projection of a model's latency onto a device that is not attached, with its error band.

The model, per op of the graph (batch ``B``):

    op time = max(B · FLOPs / (peak[precision] · efficiency[kind][precision] · shape · fill),
                  (weights + B · (inputs + outputs)) / device bandwidth)
              + weights / weight stream + per-op overhead

``shape`` = W / (W + W½[kind][precision]), where W is the parameter count of one filter tap
(input × output channels; a depthwise convolution's channels; a GEMM's K × N), where the profile
gives W½ (else 1): a CPU's kernels run a convolution as one GEMM per tap of its filter, so a layer
with few channels runs far below the rate a wide one reaches, whatever its kernel area (int8 on
AMX: a 7×7 stem of 3 input channels at a twentieth of a 3×3 of 256); W½ is the count at which
the kind reaches half its efficiency (fitted by ``accelbench profiles fit``). ``weight stream``,
where the profile gives it, is the rate at which a CPU reads an op's weights from beyond its
cache: inside a model each layer's weights are read once per inference, cold, while its input is
still in cache from the op before; where the profile gives a core's cache (``cache_mb``), at most
that much of them, since weights larger than the cache stream on every pass of the kernel, which
its efficiency already holds. With ``cache_mb`` and ``spill_bandwidth_gbps``, the bytes an op moves
beyond the cache's size (a large activation) move at that rate, the rest at the device bandwidth.

``fill`` = min(1, B · output elements / elements that fill the device): a batch-1 layer too small
to occupy every unit of a wide device (a GPU's SMs) runs at that fraction of its peak. Where the
modelled runtime fuses (``fuse_elementwise``), element-wise and reshaping ops cost nothing of
their own: they run inside the kernel before them. A whole
inference adds its fixed per-inference cost, the input and output crossing the host link (PCIe,
USB; on a CPU, the copy into and out of the interpreter's tensors: bytes / link bandwidth + link
latency), the parameters beyond on-chip memory streamed over
that link on every inference (the Edge TPU keeps about 8 MB on chip; where
``stream_overlaps_compute``, the stream runs while the device computes and the inference takes
the longer of the two), and the per-call cost of
the runtime that calls it where the profile lists one (JAX's dispatch from Python). Offline
(batched) calls overlap the link with the device's work: their time is the larger of the two. Every
parameter is read from the profile's ``projection:`` block, which names the runtime it models
and each parameter's source: no figure of the host running accelbench enters a projection.

The band on a projected figure is the worst error of the validation rows of the same device
class (``validation.yaml``, checked by ``accelbench project --validate``), each projected with the
parameters in use and with parameters fitted without it (``validation_heldout.json``, written by
``scripts/fit_projection.py``); a class with no row is "unchecked". The per-op cost tables of
those rows ship in ``validation_costs.json``, so the band is computed without TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.hardware_profiles.schema import HardwareProfile, ProjectionParameters

VALIDATION_COSTS_FILE = Path(__file__).parent / "validation_costs.json"
HELDOUT_FILE = Path(__file__).parent / "validation_heldout.json"

# Op kinds with an efficiency of their own; an op of no listed kind is "other", and a profile
# with no efficiency for a kind uses its "other" one.
OP_KINDS: dict[str, str] = {
    "CONV_2D": "conv",
    "CONV_3D": "conv",
    "TRANSPOSE_CONV": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "matmul",
    "BATCH_MATMUL": "matmul",
    "MAX_POOL_2D": "pool",
    "AVERAGE_POOL_2D": "avgpool",
    "L2_POOL_2D": "pool",
    "MEAN": "pool",
    "RELU": "relu",
    "RELU6": "relu",
    "RELU_N1_TO_1": "relu",
    "ADD": "elementwise",
    "SUB": "elementwise",
    "MUL": "elementwise",
    "DIV": "elementwise",
    "SQUARED_DIFFERENCE": "elementwise",
    "MAXIMUM": "elementwise",
    "MINIMUM": "elementwise",
}
# Bytes of one parameter at an op's precision.
_WEIGHT_BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
# Ops a fusing runtime (TensorRT, XLA) folds into the kernel before them: no pass of their own.
# fmt: skip below: 16 names packed as a paragraph, not one per line.
FUSED_OPS = {
    "ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
    "PAD", "PADV2", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "CONCATENATION",
}  # fmt: skip
# The peak to use for each op's compute precision, best first (as in roofline.py): an int8 op on
# a device with no published int8 peak (Cortex-A72) is projected against its fp32 peak, with the
# int8 efficiency relative to that peak.
_PEAK_ORDER: dict[str, tuple[str, ...]] = {
    "int8": ("int8", "fp32", "fp16", "bf16"),
    "fp32": ("fp32", "bf16", "fp16"),
    "fp16": ("fp16", "fp32", "bf16"),
}
# Offline (batched) throughput is projected at this batch: large enough to fill any listed device.
OFFLINE_BATCH = 256
BOUNDS = ("compute", "memory", "overhead", "link")


@dataclass(frozen=True)
class OpEntry:
    """One op's cost, as the projection reads it."""

    name: str
    precision: str  # int8 | fp32 | fp16 | none (moves data only)
    flops: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    output_elements: int
    kernel_area: int = 0  # a convolution's filter height × width; 0 where unknown or not one

    @property
    def parallel_elements(self) -> int:
        """Independent pieces of work: output elements of a convolution or matmul, every element
        read by a reduction or element-wise op (a mean over 4096 inputs is not 16-wide work)."""
        gemm = ("conv", "pointwise", "depthwise", "matmul")
        return self.output_elements if self.kind in gemm else self.flops

    @property
    def weight_elements(self) -> float:
        """The op's parameter count (its bytes over the bytes of one at its precision): a
        convolution's input channels × kernel area × output channels, a GEMM's K × N."""
        return self.weight_bytes / _WEIGHT_BYTES.get(self.precision, 4)

    @property
    def tap_weight_elements(self) -> float:
        """The parameter count of the GEMM a CPU kernel runs for each filter tap: a
        convolution's input × output channels (its parameters over its kernel area), a depthwise
        convolution's channels, a GEMM's K × N."""
        if self.kernel_area > 1 and self.kind in ("conv", "depthwise"):
            return self.weight_elements / self.kernel_area
        return self.weight_elements

    @property
    def kind(self) -> str:
        if not self.flops:
            return "data"
        if self.name == "CONV_2D" and self.kernel_area == 1:
            return "pointwise"  # a plain GEMM, which CPU kernels run faster than a 3×3's
        return OP_KINDS.get(self.name, "other")


@dataclass(frozen=True)
class OpTable:
    """A graph's per-op costs and what crosses the host link, from a .tflite or a saved table."""

    model: str
    ops: list[OpEntry]
    input_bytes: int
    output_bytes: int
    precision: str

    @property
    def weight_bytes(self) -> int:
        return sum(op.weight_bytes for op in self.ops)

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @classmethod
    def from_graph_cost(cls, cost: Any) -> OpTable:
        """From ``runtimes.tflite_cost.GraphCost``."""
        ops = [
            OpEntry(
                name=op.name,
                precision=_op_precision(op.compute, cost.precision),
                flops=op.flops,
                weight_bytes=op.weight_bytes,
                input_bytes=op.input_bytes,
                output_bytes=op.output_bytes,
                output_elements=op.output_elements,
                kernel_area=getattr(op, "kernel_area", 0),
            )
            for op in cost.ops
        ]
        return cls(
            model=Path(cost.path).name,
            ops=ops,
            input_bytes=cost.input_bytes,
            output_bytes=cost.output_bytes,
            precision=cost.precision,
        )

    @classmethod
    def from_tflite(cls, path: str | Path) -> OpTable:
        from accelbench.runtimes.tflite_cost import analyze_tflite

        return cls.from_graph_cost(analyze_tflite(path))

    def to_dict(self) -> dict[str, Any]:
        """A compact form: one list per op, in OpEntry's field order."""
        return {
            "model": self.model,
            "precision": self.precision,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "op_fields": list(OpEntry.__dataclass_fields__),
            "ops": [list(asdict(op).values()) for op in self.ops],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpTable:
        fields = data["op_fields"]
        return cls(
            model=data["model"],
            ops=[OpEntry(**dict(zip(fields, op, strict=True))) for op in data["ops"]],
            input_bytes=data["input_bytes"],
            output_bytes=data["output_bytes"],
            precision=data["precision"],
        )


def _op_precision(compute: str, graph_precision: str) -> str:
    if compute == "int":
        return "int8"
    if compute in ("float", "hybrid"):
        return "fp16" if graph_precision == "fp16" else "fp32"
    return "none"


@dataclass
class Projection:
    """One model on one profile: the projected figure, what bounds it, and the time per op."""

    model: str
    profile: str
    scenario: str
    batch: int
    latency_ms: float
    compute_ms: float = 0.0
    memory_ms: float = 0.0
    overhead_ms: float = 0.0
    link_ms: float = 0.0
    stream_ms: float = 0.0  # of link_ms: parameters beyond on-chip memory
    op_ms: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bound(self) -> str:
        parts = {
            "compute": self.compute_ms,
            "memory": self.memory_ms,
            "overhead": self.overhead_ms,
            "link": self.link_ms,
        }
        return max(parts, key=parts.__getitem__)

    @property
    def samples_per_s(self) -> float:
        return self.batch / self.latency_ms * 1e3

    def top_ops(self, count: int = 3) -> list[tuple[str, float]]:
        """The ops that take longest, by name and index, with their projected ms."""
        return sorted(self.op_ms, key=lambda item: -item[1])[:count]


def parameters(profile: HardwareProfile) -> ProjectionParameters:
    """The profile's projection block, or a bare roofline (no overheads) where it has none."""
    return profile.projection or ProjectionParameters()


def project(
    table: OpTable,
    profile: HardwareProfile,
    *,
    scenario: str = "single-stream",
    runtime: str | None = None,
) -> Projection:
    """Projected time of one call of ``table`` on ``profile``: batch 1 for single-stream, a
    batch of ``OFFLINE_BATCH`` for offline (whose figure is then its samples per second)."""
    params = parameters(profile)
    batch = OFFLINE_BATCH if scenario == "offline" else 1
    bandwidth_gbps = params.device_bandwidth_gbps or profile.memory_bandwidth_gbps
    if bandwidth_gbps is None:
        raise UsageError(
            f"profile {profile.name} has no memory_bandwidth_gbps; add it to the profile YAML "
            "to project onto it"
        )
    bandwidth = bandwidth_gbps * 1e9
    per_op_s = params.per_op_overhead_us * 1e-6
    weight_stream = (params.weight_stream_gbps or 0.0) * 1e9
    cache_bytes = params.cache_mb * 1e6 if params.cache_mb else math.inf
    spill = (params.spill_bandwidth_gbps or 0.0) * 1e9
    result = Projection(table.model, profile.name, scenario, batch, 0.0)
    for index, op in enumerate(table.ops):
        if op.kind == "data" and not op.input_bytes + op.output_bytes:
            continue
        if params.fuse_elementwise and op.name in FUSED_OPS:
            continue
        compute_s = 0.0
        if op.flops:
            peak, efficiency = _peak_and_efficiency(profile, params, op)
            fill = 1.0
            if params.fill_output_elements:
                fill = min(1.0, batch * op.parallel_elements / params.fill_output_elements)
            compute_s = batch * op.flops / (peak * efficiency * fill)
        moved = op.weight_bytes + batch * (op.input_bytes + op.output_bytes)
        memory_s = min(moved, cache_bytes) / bandwidth
        if moved > cache_bytes:
            memory_s += (moved - cache_bytes) / (spill or bandwidth)
        overhead_s = per_op_s if op.kind != "data" else 0.0
        # Weights arrive from beyond the cache once per call; the activations are already there.
        stream_s = min(op.weight_bytes, cache_bytes) / weight_stream if weight_stream else 0.0
        result.compute_ms += compute_s * 1e3 if compute_s >= memory_s else 0.0
        result.memory_ms += (memory_s if memory_s > compute_s else 0.0) * 1e3 + stream_s * 1e3
        result.overhead_ms += overhead_s * 1e3
        op_s = max(compute_s, memory_s) + stream_s + overhead_s
        result.op_ms.append((f"{op.name}#{index}", op_s * 1e3))
    result.overhead_ms += params.per_inference_overhead_us * 1e-3
    if params.link_bandwidth_gbps:
        link_bandwidth = params.link_bandwidth_gbps * 1e9
        io_bytes = batch * (table.input_bytes + table.output_bytes)
        result.link_ms += (io_bytes / link_bandwidth + params.link_latency_us * 1e-6) * 1e3
        if params.on_chip_parameter_mb is not None:
            streamed = max(0, table.weight_bytes - params.on_chip_parameter_mb * 1e6)
            if streamed:
                stream_ms = streamed / link_bandwidth * 1e3
                result.stream_ms = stream_ms
                result.link_ms += stream_ms
                result.notes.append(
                    f"{streamed / 1e6:.1f} MB of parameters beyond the "
                    f"{params.on_chip_parameter_mb:g} MB on chip cross the link every inference"
                )
    if runtime and runtime in params.runtime_call_overhead_us:
        result.overhead_ms += params.runtime_call_overhead_us[runtime] * 1e-3
        result.notes.append(
            f"includes {params.runtime_call_overhead_us[runtime]:g} µs per call of the {runtime} "
            "runtime"
        )
    device_ms = result.compute_ms + result.memory_ms + result.overhead_ms
    if params.stream_overlaps_compute and result.stream_ms:
        # Parameters arrive over the link while the layers before them compute.
        result.latency_ms = max(device_ms, result.stream_ms) + result.link_ms - result.stream_ms
    elif scenario == "offline":
        # Batched serving overlaps the next batch's transfer with this batch's compute.
        result.latency_ms = max(device_ms, result.link_ms)
    else:
        result.latency_ms = device_ms + result.link_ms
    return result


def _peak_and_efficiency(
    profile: HardwareProfile, params: ProjectionParameters, op: OpEntry
) -> tuple[float, float]:
    order = _PEAK_ORDER.get(op.precision, ("fp32", "bf16", "fp16"))
    for precision in order:
        peak = profile.peak_ops_per_s(precision)
        if peak:
            efficiency = params.efficiency_for(op.kind, op.precision)
            shape = params.shape_factor(op.kind, op.precision, op.tap_weight_elements)
            return peak, efficiency * shape
    raise UsageError(
        f"profile {profile.name} has no peak_compute figure for {op.precision} ops "
        f"(tried {', '.join(order)}); add peak_compute.{order[0]} to its YAML to project onto it"
    )


def runtime_text(profile: HardwareProfile, runtime: str | None = None) -> str:
    """The software the projection assumes, and a runtime's own per-call cost where included."""
    params = parameters(profile)
    text = params.runtime or "no runtime modelled (bare per-op roofline, a lower bound)"
    if runtime and runtime in params.runtime_call_overhead_us:
        text += f", called through {runtime} (its per-call cost included)"
    return text


# ---- the band: the validation residuals of the device class -------------------------------


@lru_cache(maxsize=1)
def shipped_cost_tables() -> dict[str, dict[str, Any]]:
    """The validation rows' per-op cost tables shipped with accelbench, by row key (made by
    scripts/fit_projection.py from the same builds `project --validate` makes)."""
    if not VALIDATION_COSTS_FILE.is_file():
        return {}
    return json.loads(VALIDATION_COSTS_FILE.read_text(encoding="utf-8"))


def projected_figure(row: Any, table: OpTable, profile: HardwareProfile) -> float:
    """A validation row's projected figure in its unit (ms, or samples/s for offline)."""
    projection = project(table, profile, scenario=row.scenario, runtime=row.runtime)
    return projection.samples_per_s if row.scenario == "offline" else projection.latency_ms


def class_residuals(kind: str) -> list[tuple[Any, float]]:
    """(row, projected / published) for each validation row whose profile is of ``kind``,
    projected with the built-in profile the row names."""
    from accelbench.hardware_profiles import load_profile
    from accelbench.hardware_profiles.validation import load_rows

    tables = shipped_cost_tables()
    residuals = []
    for row in load_rows():
        profile = load_profile(row.profile)
        if profile.kind != kind or row.key not in tables:
            continue
        figure = projected_figure(row, OpTable.from_dict(tables[row.key]), profile)
        residuals.append((row, figure / row.published))
    return residuals


@lru_cache(maxsize=1)
def heldout_ratios() -> dict[str, float]:
    """Each validation row's projected/published ratio with its profile fitted without it."""
    if not HELDOUT_FILE.is_file():
        return {}
    return json.loads(HELDOUT_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=32)
def _class_worst(kind: str) -> tuple[int, float, float, str]:
    """Rows of the class, worst error as fitted, worst error held out of the fit, profiles."""
    from accelbench.hardware_profiles.validation import ratio_error

    residuals = class_residuals(kind)
    if not residuals:
        return 0, math.nan, math.nan, ""
    names = sorted({row.profile for row, _ in residuals})
    fitted = max(ratio_error(r) for _, r in residuals)
    left_out = heldout_ratios()
    heldout = [ratio_error(left_out[row.row_id]) for row, _ in residuals if row.row_id in left_out]
    return len(residuals), fitted, max([fitted, *heldout]), ", ".join(names)


def band(latency_ms: float, profile: HardwareProfile) -> dict[str, Any]:
    """The projected figure's error band: low and high ms, and what it rests on.

    The band's factor is the worst error over the class's rows, each projected both with the
    fitted parameters and with parameters fitted without that row (leave-one-out): a row the
    parameters were fitted to says little about a model they were not.
    """
    from accelbench.hardware_profiles import builtin_names

    count, fitted, worst, names = _class_worst(profile.kind)
    if profile.projection is None:
        why = "no projection parameters"
    elif profile.name not in builtin_names():
        why = "a profile of its own, whose parameters no published row checks"
    elif not count:
        why = f"no published row for {profile.kind}"
    else:
        why = ""
    if why:
        return {"low_ms": None, "high_ms": None, "rests_on": f"unchecked ({why})"}
    return {
        "low_ms": latency_ms / worst,
        "high_ms": latency_ms * worst,
        "worst_error": worst,
        "rows": count,
        "rests_on": (
            f"checked on {count} published rows for {profile.kind} ({names}): worst "
            f"{fitted:.2f}× as fitted, {worst:.2f}× with each row left out of the fit"
        ),
    }


def band_text(band_: dict[str, Any]) -> str:
    """The band as a table shows it: "1.2–4.8 ms; checked on …" or "unchecked (…)"."""
    if band_.get("low_ms") is None:
        return band_["rests_on"]
    return f"{band_['low_ms']:.3g}–{band_['high_ms']:.3g} ms; {band_['rests_on']}"


def projection_record(
    cost: Any, profile: HardwareProfile, *, runtime: str | None = None
) -> dict[str, Any]:
    """The ``projection`` part of a record: the projected latency, its band, bound and method."""
    table = OpTable.from_graph_cost(cost)
    result = project(table, profile, runtime=runtime)
    precisions = sorted({op.precision for op in table.ops if op.flops})
    return {
        "execution": "projected",
        "profile": profile.name,
        "precision": _peak_label(profile, table.precision),
        "model_precision": table.precision,
        "op_precisions": precisions,
        "flops": table.flops,
        "memory_bytes": int(cost.weight_bytes) + int(cost.activation_bytes),
        "projected_latency_ms": result.latency_ms,
        "band": band(result.latency_ms, profile),
        "bound": result.bound,
        "compute_ms": result.compute_ms,
        "memory_ms": result.memory_ms,
        "overhead_ms": result.overhead_ms,
        "link_ms": result.link_ms,
        "top_ops": [{"op": name, "ms": ms} for name, ms in result.top_ops()],
        "runtime_modelled": runtime_text(profile, runtime),
        "notes": result.notes,
        "method": (
            f"projected: per-op model of {profile.name} ({runtime_text(profile, runtime)}), "
            "parameters from its profile's projection block; no figure of this host used"
        ),
    }


def _peak_label(profile: HardwareProfile, model_precision: str) -> str:
    """The peak figure an op of the model's main precision is projected against."""
    main = "int8" if model_precision in ("int8", "int16x8") else "fp32"
    if model_precision in ("fp16", "bf16"):
        main = model_precision
    for precision in _PEAK_ORDER.get(main, ("fp32",)):
        if precision in profile.peak_compute:
            return precision
    return main
