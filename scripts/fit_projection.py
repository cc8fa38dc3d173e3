"""Fit the built-in profiles' projection parameters on the validation table, and write them.

    PYTHONPATH=. python scripts/fit_projection.py [--check]

Builds (or reads from the cache) each validation row's per-op cost table, fits each checked
profile's free parameters with scipy.optimize.least_squares on log(projected / published), with a
weak pull towards each parameter's starting value so that a parameter no row constrains stays
where its source puts it. Writes the `projection:` block at the end of each built-in profile YAML
(every parameter with its source: the published figure, or the rows it was fitted to), the
rows' cost tables to accelbench/hardware_profiles/validation_costs.json, and each row's ratio
when its profile is fitted without it (leave-one-out) to validation_heldout.json: the error
bands rest on both.
``--check`` fits nothing and prints the table with the parameters in the YAML files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from accelbench.hardware_profiles import load_profile
from accelbench.hardware_profiles.projection import (
    HELDOUT_FILE,
    VALIDATION_COSTS_FILE,
    OpTable,
    projected_figure,
)
from accelbench.hardware_profiles.schema import HardwareProfile, ProjectionParameters
from accelbench.hardware_profiles.validation import load_rows, ratio_error
from accelbench.optimizers.validation_models import cached_cost_table

BUILTIN = Path(__file__).resolve().parent.parent / "accelbench" / "hardware_profiles" / "builtin"
PRIOR_WEIGHT = 0.05  # residual weight of log(value / start): weak next to a row's log error

CORAL_URL = "https://coral.ai/docs/edgetpu/benchmarks/"
MLPERF_EDGE = "https://mlcommons.org/benchmarks/inference-edge/"
TENSORRT_RUNTIME = "TensorRT-style fused kernels (the runtime of MLPerf submissions), over PCIe"

# Each profile's block: fixed parameters with their sources, and free ones with a start and
# bounds; "fit" lists the profiles whose rows fit it (itself unless carried from another).
# A parameter path is a block field, or efficiency.<kind>.<precision>.
PLAN: dict[str, dict[str, Any]] = {
    "coral-edgetpu": {
        "runtime": "Edge TPU compiler, the whole graph as one custom op (libedgetpu, USB 3.0)",
        "fixed": {
            "on_chip_parameter_mb": (
                8.0,
                "published: about 8 MB of on-chip SRAM caches parameters, Edge TPU Compiler "
                "documentation, https://coral.ai/docs/edgetpu/compiler/",
            ),
            "link_latency_us": (0.0, "not published; folded into per_inference_overhead_us"),
            "stream_overlaps_compute": (
                True,
                "fitted to: the Coral rows, as the one of serial and overlapped streaming that "
                "puts every row within 2× (serial: Inception-ResNet V2 2.2×)",
            ),
        },
        "free": {
            "efficiency.conv.int8": (0.3, 0.02, 1.0),
            "efficiency.depthwise.int8": (0.1, 0.01, 1.0),
            "efficiency.matmul.int8": (0.1, 0.01, 1.0),
            "efficiency.other.int8": (0.1, 0.01, 1.0),
            "per_op_overhead_us": (20.0, 0.0, 200.0),
            "per_inference_overhead_us": (500.0, 0.0, 3000.0),
            "device_bandwidth_gbps": (20.0, 1.0, 200.0),
            "link_bandwidth_gbps": (0.4, 0.2, 0.5),
        },
        "fit": ["coral-edgetpu"],
    },
    "rpi4": {
        "runtime": "LiteRT + XNNPACK, 4 threads",
        "fixed": {},
        "free": {
            "efficiency.conv.fp32": (0.4, 0.05, 1.0),
            "efficiency.conv.int8": (0.8, 0.05, 4.0),
            "per_op_overhead_us": (50.0, 0.0, 500.0),
        },
        "ties": {
            # Depthwise, fully connected and the rest run a fixed fraction of the conv kernels'
            # rate (XNNPACK's depthwise and element-wise kernels are bandwidth-bound).
            "efficiency.depthwise.fp32": ("efficiency.conv.fp32", 0.5),
            "efficiency.depthwise.int8": ("efficiency.conv.int8", 0.5),
            "efficiency.matmul.fp32": ("efficiency.conv.fp32", 1.0),
            "efficiency.matmul.int8": ("efficiency.conv.int8", 1.0),
            "efficiency.other.fp32": ("efficiency.conv.fp32", 0.25),
            "efficiency.other.int8": ("efficiency.conv.int8", 0.25),
        },
        "fit": ["rpi4"],
    },
    "nvidia-t4": {
        "runtime": TENSORRT_RUNTIME,
        "fixed": {
            "link_bandwidth_gbps": (
                15.75,
                "published: PCIe 3.0 x16, NVIDIA T4 datasheet, "
                "https://www.nvidia.com/en-us/data-center/tesla-t4/",
            ),
            "link_latency_us": (10.0, "published order: one PCIe round trip, ~10 µs"),
            "fuse_elementwise": (
                True,
                "TensorRT fuses element-wise layers into the convolution before them, "
                "https://docs.nvidia.com/deeplearning/tensorrt/latest/performance/best-practices.html",
            ),
        },
        "free": {
            "efficiency.conv.int8": (0.5, 0.05, 1.0),
            "per_op_overhead_us": (8.0, 1.0, 50.0),
            "per_inference_overhead_us": (50.0, 0.0, 500.0),
            "fill_output_elements": (2e5, 1e3, 1e8),
        },
        "ties": {
            "efficiency.depthwise.int8": ("efficiency.conv.int8", 0.25),
            "efficiency.matmul.int8": ("efficiency.conv.int8", 0.5),
            "efficiency.other.int8": ("efficiency.conv.int8", 0.1),
            "efficiency.conv.fp32": ("efficiency.conv.int8", 1.0),
            "efficiency.depthwise.fp32": ("efficiency.conv.int8", 0.25),
            "efficiency.matmul.fp32": ("efficiency.conv.int8", 0.5),
            "efficiency.other.fp32": ("efficiency.conv.int8", 0.1),
        },
        "fit": ["nvidia-t4"],
    },
    "nvidia-a100": {
        "runtime": TENSORRT_RUNTIME,
        "fixed": {
            "link_bandwidth_gbps": (
                31.5,
                "published: PCIe 4.0 x16 host link, NVIDIA A100 datasheet, "
                "https://www.nvidia.com/en-us/data-center/a100/",
            ),
        },
        "carry": {
            "nvidia-t4": [
                "fuse_elementwise",
                "link_latency_us",
                "per_op_overhead_us",
                "per_inference_overhead_us",
                "fill_output_elements",
            ]
        },
        "free": {"efficiency.conv.int8": (0.5, 0.05, 1.0)},
        "ties": "nvidia-t4",
        "fit": ["nvidia-a100"],
    },
    "nvidia-h100": {
        "runtime": TENSORRT_RUNTIME,
        "fixed": {
            "link_bandwidth_gbps": (
                63.0,
                "published: PCIe 5.0 x16 host link, NVIDIA H100 datasheet, "
                "https://www.nvidia.com/en-us/data-center/h100/",
            ),
        },
        "carry": {
            "nvidia-t4": [
                "fuse_elementwise",
                "link_latency_us",
                "per_op_overhead_us",
                "per_inference_overhead_us",
                "fill_output_elements",
            ]
        },
        "free": {
            "efficiency.conv.int8": (0.5, 0.05, 1.0),
            "runtime_call_overhead_us.jax": (300.0, 0.0, 2000.0),
        },
        "ties": "nvidia-t4",
        "fit": ["nvidia-h100"],
    },
}


# Profiles with no published row of their own: their blocks are carried from a fitted profile
# with the same runtime, and their sources say so. "int8_as_fp32_ratio": the source profile has
# no int8 peak (its int8 efficiency is against its fp32 peak), so the int8 efficiency carried is
# scaled to keep the same int8-to-fp32 speed ratio against this profile's int8 peak.
CARRIED: dict[str, dict[str, Any]] = {
    "nvidia-l4": {
        "from": "nvidia-t4",
        "runtime": TENSORRT_RUNTIME,
        "fixed": {
            "link_bandwidth_gbps": (
                31.5,
                "published: PCIe 4.0 x16, NVIDIA L4 datasheet, "
                "https://www.nvidia.com/en-us/data-center/l4/",
            )
        },
    },
    "jetson-orin-nano": {
        "from": "nvidia-t4",
        "runtime": "TensorRT-style fused kernels, integrated GPU sharing host memory (no link)",
        "drop": ["link_bandwidth_gbps", "link_latency_us", "runtime_call_overhead_us"],
    },
    "tpu-v5e": {
        "from": "nvidia-h100",
        "runtime": "XLA, the whole graph compiled to one program",
        "drop": ["link_bandwidth_gbps", "link_latency_us"],
    },
    "rpi5": {
        "from": "rpi4",
        "runtime": "LiteRT + XNNPACK, 4 threads",
        "int8_as_fp32_ratio": True,
    },
    "x86-server": {
        "from": "rpi4",
        "runtime": "LiteRT + XNNPACK, 32 threads",
        "int8_as_fp32_ratio": True,
    },
}


# GPU profiles that list jax and have no row of their own for it: JAX's per-call cost from
# Python (dispatch, and the wait for a GPU result) is the host's and the driver's, not the card's.
JAX_CALL_FROM_H100 = ("nvidia-t4", "nvidia-a100")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--cached", action="store_true", help="use only the rows whose model is already built"
    )
    args = parser.parse_args()
    rows = load_rows()
    tables = {row.key: cached_cost_table(row, build=not args.cached) for row in rows}
    rows = [row for row in rows if tables[row.key] is not None]
    tables = {key: table for key, table in tables.items() if table is not None}
    if not args.check:
        VALIDATION_COSTS_FILE.write_text(
            json.dumps(dict(sorted(tables.items())), separators=(",", ":")) + "\n",
            encoding="utf-8",
        )
        heldout: dict[str, float] = {}
        for name, plan in PLAN.items():
            fit_profile(name, plan, [r for r in rows if r.profile in plan["fit"]], tables, heldout)
        for name in JAX_CALL_FROM_H100:
            carry_runtime_call("nvidia-h100", name)
        for name, plan in CARRIED.items():
            carry_profile(name, plan)
        HELDOUT_FILE.write_text(json.dumps(heldout, indent=1) + "\n", encoding="utf-8")
    report(rows, tables)
    return 0


def fit_profile(
    name: str, plan: dict[str, Any], rows: list[Any], tables: dict, heldout: dict[str, float]
) -> None:
    free = plan["free"]
    names = list(free)
    start = np.log([free[n][0] for n in names])
    lower = np.log([max(free[n][1], 1e-6) for n in names])
    upper = np.log([free[n][2] for n in names])
    ties = plan.get("ties", {})
    ties = PLAN[ties]["ties"] if isinstance(ties, str) else ties
    fixed = dict(plan["fixed"])
    for other, carried in plan.get("carry", {}).items():
        block_of = load_profile(other).projection
        assert block_of is not None, f"fit {other} before {name}"
        for n in carried:
            fixed[n] = (getattr(block_of, n), f"carried from {other}: {block_of.sources[n]}")
    profile = load_profile(name)

    def values_of(x: np.ndarray) -> dict[str, float]:
        values = {n: float(math.exp(v)) for n, v in zip(names, x, strict=True)}
        for target, (source, factor) in ties.items():
            values[target] = values[source] * factor
        for n, (value, _) in fixed.items():
            values[n] = value
        return values

    def solve(subset: list[Any]) -> dict[str, float]:
        def residuals(x: np.ndarray) -> np.ndarray:
            fitted = with_block(profile, nest(values_of(x), plan["runtime"]))
            errors = [math.log(figure(row, tables, fitted) / row.published) for row in subset]
            return np.array([*errors, *(PRIOR_WEIGHT * (x - start))])

        x0 = np.clip(start, lower, upper)
        return values_of(least_squares(residuals, x0, bounds=(lower, upper)).x)

    values = solve(rows)
    # Each row projected by a fit without it: the error to expect on a model not fitted on.
    for row in rows:
        others = [other for other in rows if other is not row]
        fitted = with_block(profile, nest(solve(others), plan["runtime"]))
        heldout[row.row_id] = round(figure(row, tables, fitted) / row.published, 4)
    fitted_on = "; ".join(f"{r.label()} {r.scenario} on {r.profile}" for r in rows)
    sources: dict[str, str] = {}
    for n in values:
        top = n.split(".")[0]
        if n in fixed:
            sources[top] = fixed[n][1]
        elif top == "efficiency":
            sources[top] = (
                f"fitted to: {fitted_on} (kinds other than the fitted ones at fixed ratios to "
                "them: scripts/fit_projection.py)"
            )
        else:
            sources[top] = f"fitted to: {fitted_on}"
    data = nest(values, plan["runtime"], rounded=True)
    data["sources"] = sources
    write_block(name, data)


def carry_runtime_call(source_name: str, name: str) -> None:
    source = load_profile(source_name).projection
    target = load_profile(name).projection
    assert source is not None and target is not None
    data = target.model_dump(exclude_unset=True)
    data["runtime_call_overhead_us"] = dict(source.runtime_call_overhead_us)
    sources = dict(data.pop("sources"))
    sources["runtime_call_overhead_us"] = (
        f"carried from {source_name}, not checked on a row of {name}: "
        f"{source.sources['runtime_call_overhead_us']}"
    )
    data["sources"] = sources
    write_block(name, data)


def carry_profile(name: str, plan: dict[str, Any]) -> None:
    other = plan["from"]
    source_profile = load_profile(other)
    source = source_profile.projection
    assert source is not None, f"fit {other} before {name}"
    data = source.model_dump(exclude_unset=True)
    data["runtime"] = plan["runtime"]
    sources = {
        key: f"carried from {other}, not checked on a row of {name}: {text}"
        for key, text in source.sources.items()
    }
    for key in plan.get("drop", []):
        data.pop(key, None)
        sources.pop(key, None)
    target = load_profile(name)
    if plan.get("int8_as_fp32_ratio") and target.peak_ops_per_s("int8"):
        scale = target.peak_ops_per_s("fp32") / target.peak_ops_per_s("int8")
        for by_precision in data["efficiency"].values():
            if "int8" in by_precision:
                by_precision["int8"] = float(f"{by_precision['int8'] * scale:.4g}")
        sources["efficiency"] += (
            f" (int8 scaled by this profile's fp32/int8 peak ratio {scale:.3g}: the int8 to "
            f"fp32 speed ratio of {other} kept)"
        )
    for key, (value, text) in plan.get("fixed", {}).items():
        data[key] = value
        sources[key] = text
    data.pop("sources", None)
    data["sources"] = sources
    write_block(name, data)


def figure(row: Any, tables: dict, profile: HardwareProfile) -> float:
    return projected_figure(row, OpTable.from_dict(tables[row.key]), profile)


def nest(values: dict[str, float], runtime: str, *, rounded: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"runtime": runtime}
    for path, value in sorted(values.items()):
        if rounded and not isinstance(value, bool):
            value = float(f"{value:.4g}")
        parts = path.split(".")
        if len(parts) == 1:
            data[path] = value
            continue
        leaf = data
        for part in parts[1:-1]:
            leaf = leaf.setdefault(parts[0], {}).setdefault(part, {})
        if len(parts) == 2:
            leaf = data.setdefault(parts[0], {})
        leaf[parts[-1]] = value
    return data


def with_block(profile: HardwareProfile, data: dict[str, Any]) -> HardwareProfile:
    params = ProjectionParameters.model_validate({k: v for k, v in data.items() if k != "sources"})
    return profile.model_copy(update={"projection": params})


def write_block(name: str, data: dict[str, Any]) -> None:
    path = BUILTIN / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    head = text.split("\nprojection:\n")[0].rstrip("\n")
    block = yaml.safe_dump({"projection": data}, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(head + "\n" + block, encoding="utf-8")


def report(rows: list[Any], tables: dict) -> None:
    for row in rows:
        profile = load_profile(row.profile)
        projected = figure(row, tables, profile)
        ratio = projected / row.published
        print(
            f"{row.profile:14} {row.label():28} {row.scenario:13} {projected:10.4g} "
            f"{row.published:10.4g} {ratio:6.2f} {ratio_error(ratio):5.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
