"""The worker process: runs one cell in isolation and writes its result as JSON.

Started as ``python -m accelbench.runner.worker CELL.json RESULT.json LOG_DIR`` by the sweep,
in the cell's sandbox (runner/sandbox.py). The profile's threads, CPU affinity and memory cap,
and the platform JAX may use (the CPU, unless the cell is on an attached GPU/TPU), are applied
before any interpreter or framework is imported.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from accelbench.errors import failure_reason
from accelbench.records import artifact_info, plain, write_result


def main(argv: list[str]) -> int:
    # LOG_DIR: the cell's own folder, for LoadGen's logs and any other file the cell writes.
    cell_path, result_path, log_dir = Path(argv[0]), Path(argv[1]), Path(argv[2])
    cell = json.loads(cell_path.read_text(encoding="utf-8"))
    if cell.get("trust_model"):
        from accelbench.runtimes.model_inspect import trust

        trust(*named_model_paths(cell))
    try:
        result = run_cell(cell, log_dir=log_dir)
        code = 0
    except Exception as exc:  # noqa: BLE001 - a worker reports every failure as the cell's reason
        from accelbench.errors import CellSkipped

        traceback.print_exc()
        if isinstance(exc, CellSkipped):
            result, code = {"status": "skipped", "error": str(exc)}, 0
        else:
            result, code = {"status": "failed", "error": failure_reason(exc)}, 1
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    write_result(result_path, result)
    return code


def named_model_paths(cell: dict[str, Any]) -> list[str]:
    """The model files a cell names (its own, and a paired cell's other sides)."""
    settings = cell.get("settings") or {}
    paths = [cell.get("model_path"), (settings.get("ab") or {}).get("new_path")]
    paths += [side.get("path") for side in settings.get("paired_sides") or []]
    return [p for p in paths if p]


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    from accelbench.hardware_profiles import HardwareProfile
    from accelbench.hardware_profiles.emulation import apply_emulation, check_artifact_supported
    from accelbench.records import metric
    from accelbench.runner.suite import MODULE_SCENARIOS, on_accelerator, scenario_module

    profile = HardwareProfile.model_validate(cell["profile_data"])
    execution = cell["execution"]
    threads = int(cell["threads"])
    accelerated = on_accelerator(profile.kind, execution)
    applied: dict[str, Any] = {}
    if execution in ("emulated", "local"):
        # Before any interpreter import: thread pools and affinity are fixed at first use.
        applied = apply_emulation(profile, threads) if execution == "emulated" else {}
    pin_jax_platform(accelerated)
    _injected_fault(cell)

    if cell["scenario"] == "paired":
        # Artifacts timed together in this one worker: accelbench ab's two, or a suite model's
        # optimizations against its fp32 artifact.
        from accelbench.benchmarks import paired

        if "paired_sides" in cell["settings"]:
            _leave_out_refused(cell, profile)
        measured = paired.run_cell(cell, log_dir)
        measured.setdefault("emulation", applied)
        return measured
    if cell["scenario"] in MODULE_SCENARIOS:
        measured = scenario_module(cell["scenario"]).run_cell(cell, log_dir)
        measured.setdefault("emulation", applied)
        return measured
    model_path = Path(cell["model_path"])
    result: dict[str, Any] = {"status": "ok", "error": None, "emulation": applied, "metrics": {}}
    result["artifact"] = artifact_info(model_path)
    result["metrics"]["model_bytes"] = metric(result["artifact"]["bytes"], "bytes", "lower")

    cost = None
    if model_path.suffix == ".tflite":
        from accelbench.runtimes.tflite_cost import analyze_tflite

        cost = analyze_tflite(model_path)
        result["graph"] = plain(cost)
        refusal = check_artifact_supported(profile, cost)
        if refusal:
            from accelbench.errors import CellSkipped

            raise CellSkipped(refusal)
        if cost.flops:
            result["metrics"]["model_gflops"] = metric(cost.flops / 1e9, "GFLOP", "none")

    if execution == "projected":
        return _projected(cell, profile, cost, result)

    from accelbench.benchmarks.loadgen import run_scenario
    from accelbench.runtimes import open_runtime
    from accelbench.runtimes.inputs import DEFAULT_SAMPLE_COUNT, load_inputs, make_inputs

    t0 = time.perf_counter()
    runtime = open_runtime(
        model_path, cell["runtime"], threads=threads, xnnpack=bool(cell["xnnpack"])
    )
    load_ms = (time.perf_counter() - t0) * 1e3
    try:
        if accelerated:
            _check_runs_on_accelerator(runtime, profile)
        specs = runtime.inputs()
        if cell.get("inputs_path"):
            samples = load_inputs(cell["inputs_path"], specs)
        else:
            samples = make_inputs(specs, DEFAULT_SAMPLE_COUNT, seed=int(cell["seed"]))
        t0 = time.perf_counter()
        runtime.run(samples[0])
        first_ms = (time.perf_counter() - t0) * 1e3
        # The machine's own speed just before and after the scenario, for compare (canary.py).
        from accelbench.benchmarks import canary

        timed = execution in ("local", "emulated")
        before_ms = canary.measure() if timed else None
        scenario = run_scenario(
            runtime,
            samples,
            cell["scenario"],
            cell["preset"],
            log_dir,
            batch_size=cell.get("batch_size"),
        )
        if timed:
            result["canary"] = {
                "before_ms": before_ms,
                "after_ms": canary.measure(),
                "method": canary.METHOD,
            }
        result["runtime"] = runtime.info()
    finally:
        runtime.close()
    result["metrics"]["load_ms"] = metric(load_ms, "ms", "lower")
    result["metrics"]["first_inference_ms"] = metric(first_ms, "ms", "lower")
    result["metrics"].update(scenario.metrics)
    result["loadgen"] = {k: v for k, v in scenario.to_dict().items() if k not in ("metrics",)}
    result["raw_latencies_ms"] = result["loadgen"].pop("latencies_ms", [])
    if not scenario.valid:
        result["status"] = "invalid"
        failed = [k for k, ok in scenario.criteria.items() if not ok]
        result["error"] = "LoadGen result INVALID: " + (", ".join(failed) or "see the log")
    p50 = scenario.metrics.get("latency_p50_ms", {}).get("value")
    if accelerated:
        from accelbench.runtimes.jax_runtime import utilization_metrics

        rate = samples_per_second(cell["scenario"], scenario.metrics)
        result["metrics"].update(utilization_metrics(result["runtime"], rate, profile))
    if execution == "emulated" and cost is not None and p50:
        result["projection"] = _project(cost, profile, p50, threads)
        result["metrics"]["projected_latency_ms"] = metric(
            result["projection"]["projected_latency_ms"], "ms", "lower"
        )
    return result


def _leave_out_refused(cell: dict[str, Any], profile: Any) -> None:
    """Drop from a paired cell the artifacts the profile cannot run (a precision it lacks), each
    with the reason its own single-stream cell is skipped for."""
    from accelbench.hardware_profiles.emulation import check_artifact_supported
    from accelbench.runtimes.tflite_cost import analyze_tflite

    settings = cell["settings"]
    kept = []
    for side in settings["paired_sides"]:
        path = Path(side["path"])
        refusal = (
            check_artifact_supported(profile, analyze_tflite(path))
            if path.suffix == ".tflite"
            else None
        )
        if refusal:
            settings.setdefault("paired_left_out", {})[side["optimization"]] = refusal
        else:
            kept.append(side)
    settings["paired_sides"] = kept


def pin_jax_platform(accelerated: bool) -> str | None:
    """Make JAX run on the CPU in this worker unless the cell is on an attached GPU/TPU;
    returns the ``JAX_PLATFORMS`` the worker runs with (None: JAX picks).

    JAX takes the accelerator whenever it finds one, so on a GPU machine a host, emulated or
    edge cell would otherwise measure the GPU and label it as the CPU. Must run before JAX is
    imported (it reads ``JAX_PLATFORMS`` once); an accelerator cell keeps the environment's.
    """
    if not accelerated:
        os.environ["JAX_PLATFORMS"] = "cpu"
    return os.environ.get("JAX_PLATFORMS")


def _check_runs_on_accelerator(runtime: Any, profile: Any) -> None:
    """An attached GPU/TPU cell whose JAX fell back to the CPU fails: never a CPU figure under a
    GPU's name."""
    backend = getattr(runtime, "backend", None)
    if backend == "cpu":
        raise RuntimeError(
            f"{profile.name} is attached, but JAX runs on the CPU in this worker "
            f"(JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', 'unset')}); install JAX for the "
            f"{profile.kind.upper()} (jax[cuda12], jax[cuda13] or jax[tpu]) and leave "
            "JAX_PLATFORMS unset"
        )


def samples_per_second(scenario: str, metrics: dict[str, Any]) -> float | None:
    """The rate the runtime did samples at in a LoadGen run: LoadGen's samples/s where it
    counts them over the run (offline, server), else a query's samples over its p50 latency."""

    def value(name: str) -> float | None:
        return (metrics.get(name) or {}).get("value")

    if scenario in ("offline", "server"):
        return value("qps")
    p50, samples, queries = value("latency_p50_ms"), value("sample_count"), value("query_count")
    if not p50:
        return None
    per_query = samples / queries if samples and queries else 1.0
    return per_query / (p50 / 1e3)


def _injected_fault(cell: dict[str, Any]) -> None:
    """Test hook: ACCELBENCH_WORKER_FAULT=KIND[:TEXT] makes cells whose id contains TEXT misbehave.

    KIND is segv, kill (as the out-of-memory killer does), hang or raise. The sweep's handling of
    real crashes, kills and hangs is tested through it.
    """
    spec = os.environ.get("ACCELBENCH_WORKER_FAULT")
    if not spec:
        return
    kind, _, where = spec.partition(":")
    if where and where not in cell.get("cell_id", ""):
        return
    import signal

    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "raise":
        raise RuntimeError("injected fault")


def _project(
    cost: Any, profile: Any, host_measured_ms: float | None, host_threads: int | None
) -> dict[str, Any]:
    from accelbench.hardware_profiles.calibrate import load_calibration
    from accelbench.hardware_profiles.roofline import project_latency

    projection = project_latency(
        cost,
        profile,
        load_calibration(),
        host_measured_ms=host_measured_ms,
        host_threads=host_threads if host_measured_ms else None,
    )
    projection.pop("metrics", None)
    return projection


def _projected(
    cell: dict[str, Any], profile: Any, cost: Any, result: dict[str, Any]
) -> dict[str, Any]:
    from accelbench.errors import CellSkipped
    from accelbench.records import metric

    if cost is None:
        raise CellSkipped(
            f"{profile.name} is not attached, and projection needs a .tflite graph to count its "
            "FLOPs and bytes; convert the model to .tflite to project it"
        )
    settings = cell["settings"]
    result["projection"] = _project(
        cost, profile, settings.get("host_measured_ms"), settings.get("host_measured_threads")
    )
    result["metrics"]["projected_latency_ms"] = metric(
        result["projection"]["projected_latency_ms"], "ms", "lower"
    )
    return result


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
