"""Roofline projection of a model's latency onto a device that is not attached, labelled so."""

from __future__ import annotations

from typing import Any, Protocol

from accelbench.errors import UsageError
from accelbench.hardware_profiles.calibrate import Calibration
from accelbench.hardware_profiles.schema import HardwareProfile
from accelbench.records import metric

# Host efficiency outside this range means the measurement or the calibration is off (a model
# that lives in cache beats the DRAM roofline; a tiny one is all overhead), not a real factor.
EFFICIENCY_RANGE = (0.005, 1.0)

# The peak figure to use for each graph precision label, best first. A float16 .tflite computes
# in fp16 where the device has it; fp32 on a TPU runs as bf16 passes (XLA's default); a
# dynamic-range model's float activations make it a float workload on accelerators; an int8
# model on a device with no published int8 peak (Cortex-A72) falls back to its fp32 peak.
_PEAK_ORDER: dict[str, tuple[str, ...]] = {
    "fp32": ("fp32", "bf16", "fp16"),
    "fp16": ("fp16", "fp32"),
    "bf16": ("bf16", "fp32"),
    "int8": ("int8", "fp32"),
    "int16x8": ("int8", "fp32"),
    "dynamic": ("fp32", "bf16", "fp16"),
    "mixed": ("fp32", "bf16", "fp16"),
}


class CostLike(Protocol):
    """What a projection needs of a model's graph cost (``runtimes.tflite_cost.GraphCost``)."""

    flops: int
    weight_bytes: int
    activation_bytes: int
    precision: str


def project_latency(
    cost: CostLike,
    profile: HardwareProfile,
    calibration: Calibration | None,
    host_measured_ms: float | None = None,
    *,
    host_threads: int | None = None,
) -> dict[str, Any]:
    """Projected single-inference latency of ``cost`` on ``profile``, with the figures used.

    Roofline time = max(FLOPs / peak compute, bytes / memory bandwidth), where bytes are every
    weight and activation crossing memory once. With this host's calibration and a latency
    measured here (same model, same batch), the host's efficiency against its own roofline is
    carried over to the device; without them the result is the bare roofline, a lower bound.
    ``host_threads``: the threads the host measurement used, when fewer than the calibration's;
    the host's compute peak is scaled down in proportion (its bandwidth is not).
    Neither models kernel-launch or transfer overhead, which dominate tiny models on GPUs.
    """
    precision = _pick_precision(cost.precision, profile)
    peak = profile.peak_ops_per_s(precision)
    assert peak is not None  # _pick_precision only returns published figures
    if profile.memory_bandwidth_gbps is None:
        raise UsageError(
            f"profile {profile.name} has no memory_bandwidth_gbps; add it to the profile YAML "
            "to project onto it"
        )
    bandwidth = profile.memory_bandwidth_gbps * 1e9
    flops = int(cost.flops)
    memory_bytes = int(cost.weight_bytes) + int(cost.activation_bytes)
    compute_s = flops / peak
    memory_s = memory_bytes / bandwidth
    roofline_ms = max(compute_s, memory_s) * 1e3
    unit = "TOP/s" if precision == "int8" else "TFLOP/s"

    result: dict[str, Any] = {
        "execution": "projected",
        "profile": profile.name,
        "precision": precision,
        "model_precision": cost.precision,
        "flops": flops,
        "memory_bytes": memory_bytes,
        "arithmetic_intensity": flops / memory_bytes if memory_bytes else None,
        "ridge_point": peak / bandwidth,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "peak_compute": {"figure": f"peak_compute.{precision}", "value": peak / 1e12, "unit": unit},
        "memory_bandwidth_gbps": profile.memory_bandwidth_gbps,
        "roofline_latency_ms": roofline_ms,
        "efficiency": None,
        "efficiency_raw": None,
        "efficiency_clamped": False,
        "host_roofline_ms": None,
        "host_measured_ms": host_measured_ms,
        "host_threads": host_threads,
    }

    host_precision = "int8" if cost.precision in ("int8", "int16x8") else "fp32"
    host_peak = calibration.peak_ops_per_s(host_precision) if calibration else None
    if host_peak and calibration and host_threads and 0 < host_threads < calibration.threads:
        host_peak *= host_threads / calibration.threads
    if calibration is not None and host_measured_ms and host_measured_ms > 0 and host_peak:
        host_roofline_ms = (
            max(flops / host_peak, memory_bytes / (calibration.memory_bandwidth_gbps * 1e9)) * 1e3
        )
        raw = host_roofline_ms / host_measured_ms
        efficiency = min(max(raw, EFFICIENCY_RANGE[0]), EFFICIENCY_RANGE[1])
        projected_ms = roofline_ms / efficiency
        result.update(
            efficiency=efficiency,
            efficiency_raw=raw,
            efficiency_clamped=efficiency != raw,
            host_roofline_ms=host_roofline_ms,
        )
        method = (
            f"projected: roofline on {profile.name} ({precision} peak, published figures) "
            f"divided by this host's efficiency {efficiency:.3g} "
            f"(host roofline {host_roofline_ms:.4g} ms from calibration / measured "
            f"{host_measured_ms:.4g} ms{', clamped' if efficiency != raw else ''})"
        )
    else:
        projected_ms = roofline_ms
        missing = (
            "no host calibration"
            if calibration is None or not host_peak
            else "no host-measured latency"
        )
        method = (
            f"projected: pure roofline on {profile.name} ({precision} peak, published figures); "
            f"uncalibrated ({missing}), so a lower bound on latency"
        )
    if precision != cost.precision and cost.precision in _PEAK_ORDER:
        method += f"; a {cost.precision} model projected with the {precision} peak"
    result["projected_latency_ms"] = projected_ms
    result["method"] = method
    result["metrics"] = {"projected_latency_ms": metric(projected_ms, "ms", "lower")}
    return result


def _pick_precision(model_precision: str, profile: HardwareProfile) -> str:
    order = _PEAK_ORDER.get(model_precision, ("fp32",))
    for precision in order:
        if precision in profile.peak_compute:
            return precision
    raise UsageError(
        f"profile {profile.name} has no peak_compute figure for a {model_precision} model "
        f"(tried {', '.join(order)}); add peak_compute.{order[0]} to its YAML to project onto it"
    )
