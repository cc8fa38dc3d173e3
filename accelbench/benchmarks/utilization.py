"""A JAX cell's use of its accelerator as record metrics: achieved FLOP/s, model FLOPs
utilization against the profile's peak, and the device memory's peak."""

from __future__ import annotations

from typing import Any

from accelbench.records import metric


def utilization_metrics(
    runtime_info: dict[str, Any], samples_per_s: float | None, profile: Any
) -> dict[str, Any]:
    """Achieved FLOP/s (FLOPs per sample x the samples/s the scenario ran at), model FLOPs
    utilization against ``profile``'s fp32 peak, and device memory, as record metrics, for a
    JAX cell that ran on an attached GPU/TPU; {} otherwise."""
    flops = runtime_info.get("flops_per_sample")
    if runtime_info.get("runtime") != "jax" or not flops or not samples_per_s:
        return {}
    achieved = flops * samples_per_s
    metrics = {"achieved_flops_per_s": metric(achieved, "FLOP/s", "higher")}
    peak = profile.peak_ops_per_s("fp32") or profile.peak_ops_per_s("bf16")
    if peak:
        metrics["mfu"] = metric(achieved / peak, "fraction", "higher")
    memory = runtime_info.get("device_memory_peak_bytes")
    if memory is not None:
        metrics["device_memory_peak_bytes"] = metric(memory, "bytes", "lower")
    return metrics
