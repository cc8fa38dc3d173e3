"""A remote profile's cell: measured on its device over SSH, and its record's ``remote`` part."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from accelbench.errors import CellSkipped
from accelbench.records import metric

# Time kept back from the cell's timeout, so that a device that stops answering fails the cell
# with that reason before the sweep kills the worker.
TIMEOUT_MARGIN_S = 5.0
# A device with less memory than this share of the profile's contradicts it (kernels reserve some).
MEMORY_SHARE = 0.85
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


def run_remote_cell(
    cell: dict[str, Any], profile: Any, result: dict[str, Any], log_dir: Path
) -> dict[str, Any]:
    """Measure a single-stream cell on the profile's device; ``result`` holds the local parts
    (artifact, graph) already."""
    from accelbench.benchmarks.presets import get_preset
    from accelbench.runner.devices.ssh import SshDevice

    if cell["scenario"] != "single-stream":
        raise CellSkipped(
            f"{profile.name} is a remote device, which runs the single-stream scenario only; "
            "use scenarios: [single-stream] for it"
        )
    model = Path(cell["model_path"])
    if model.suffix != ".tflite":
        raise CellSkipped(
            f"{profile.name} is a remote device, which runs .tflite artifacts with the edge "
            f"runner, not {model.suffix or 'this file'}; convert the model to .tflite"
        )
    if cell.get("inputs_path"):
        raise CellSkipped(
            f"{profile.name} is a remote device, which runs random inputs only; leave 'inputs' "
            "out for it"
        )
    device = SshDevice.from_profile(profile, known_keys_only=True)
    preset = get_preset(cell["preset"], "single-stream")
    timeout_s = float(cell.get("timeout_s") or 600.0)
    deadline = time.monotonic() + max(timeout_s - TIMEOUT_MARGIN_S, timeout_s / 2)
    run_key = Path(log_dir).resolve().parent.parent.name or "run"
    spec = {
        "threads": int(cell["threads"]),
        "xnnpack": bool(cell["xnnpack"]),
        "seed": int(cell["seed"]),
        "sample_count": 64,
        "min_duration_ms": preset.min_duration_ms or 600_000,
        "min_query_count": preset.min_query_count or 1024,
        "max_duration_ms": preset.max_duration_ms,
        "trace": preset.loadgen_trace,
        "log_dir": f"{device.folder}/runs/{run_key}/{cell['cell_id']}",
    }
    measured = device.measure(model, spec, deadline=deadline)
    latencies = [float(x) for x in measured["latencies_ms"]]
    result["metrics"].update(latency_metrics(latencies, float(measured["duration_s"])))
    if measured.get("loadgen_values"):
        # LoadGen's own figures, from issue to completion, as a local cell's are.
        from accelbench.benchmarks.loadgen.logs import result_metrics

        values = measured["loadgen_values"]
        result["metrics"].update(result_metrics("single-stream", values, {"estimates_ms": {}}))
    result["metrics"]["load_ms"] = metric(measured["load_ms"], "ms", "lower")
    result["metrics"]["first_inference_ms"] = metric(measured["first_inference_ms"], "ms", "lower")
    result["runtime"] = measured["runtime"]
    result["raw_latencies_ms"] = latencies
    fingerprint = measured["fingerprint"]
    result["remote"] = {
        "transport": "ssh",
        "host": device.address,
        "fingerprint": fingerprint,
        "timing": measured["timing"],
        "folder": spec["log_dir"],
        "artifact_path": measured["device_model_path"],
        "contradictions": contradictions(profile, fingerprint),
    }
    return result


def latency_metrics(latencies_ms: list[float], duration_s: float) -> dict[str, dict[str, Any]]:
    """The single-stream metrics of a device's query latencies, named as a local cell's."""
    import numpy as np

    if not latencies_ms:
        raise RuntimeError("the device ran no query; raise the cell's timeout")
    values = np.asarray(latencies_ms)
    metrics = {
        f"latency_{name}_ms": metric(float(np.percentile(values, q)), "ms", "lower")
        for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99))
    }
    metrics["latency_mean_ms"] = metric(float(values.mean()), "ms", "lower")
    metrics["latency_min_ms"] = metric(float(values.min()), "ms", "lower")
    metrics["latency_max_ms"] = metric(float(values.max()), "ms", "lower")
    metrics["qps"] = metric(len(values) / duration_s if duration_s else None, "queries/s", "higher")
    metrics["query_count"] = metric(len(values), "queries", "none")
    metrics["sample_count"] = metric(len(values), "samples", "none")
    metrics["duration_s"] = metric(duration_s, "s", "none")
    return metrics


def contradictions(profile: Any, fingerprint: dict[str, Any]) -> list[str]:
    """Where the device, as it reports itself, is not the device the profile describes."""
    found = []
    arch = profile.remote.arch if profile.remote else None
    machine = str(fingerprint.get("machine") or "")
    if arch and machine and _arch(arch) != _arch(machine):
        found.append(f"the profile says {arch}, the device is {machine}")
    cores = fingerprint.get("cores")
    if cores and cores < profile.cores:
        found.append(f"the profile says {profile.cores} cores, the device has {cores}")
    memory = fingerprint.get("memory_gb")
    if memory and memory < profile.memory_gb * MEMORY_SHARE:
        found.append(
            f"the profile says {profile.memory_gb:g} GB of memory, the device has {memory:g}"
        )
    return found


def lacks(fingerprint: dict[str, Any]) -> list[str]:
    """What the device lacks for the runner (numpy, an interpreter package) or for LoadGen."""
    packages = fingerprint.get("packages") or {}
    missing = []
    if not packages.get("numpy"):
        missing.append("numpy (pip install numpy)")
    if not any(packages.get(p) for p in ("ai-edge-litert", "tflite-runtime", "tensorflow")):
        missing.append("an interpreter package (pip install ai-edge-litert, or tflite-runtime)")
    if not packages.get("mlcommons-loadgen"):
        missing.append(
            "LoadGen (pip install mlcommons-loadgen); without it cells are timed in a loop"
        )
    return missing


def _arch(name: str) -> str:
    lowered = name.lower()
    return _ARCH_ALIASES.get(lowered, lowered)
