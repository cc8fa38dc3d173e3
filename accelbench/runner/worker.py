"""The worker process: runs cells in isolation and writes each one's result as JSON.

Started by the sweep in the cell's sandbox (runner/sandbox.py), in one of two forms:

- ``python -m accelbench.runner.worker CELL.json RESULT.json LOG_DIR`` runs one cell and exits;
- ``python -m accelbench.runner.worker --serve FD LABEL`` serves the cells of one worker
  environment (runner/pool.py) one after another: each request arrives on the Unix socket FD
  with the cell's log file, and the worker answers once the cell's result file is written.
  LABEL (the run's cells folder) only names the process for whoever lists it.

The profile's threads, CPU affinity and memory cap, and the platform JAX may use (the CPU,
unless the cell is on an attached GPU/TPU), are applied before any interpreter or framework is
imported, once per process: every cell a worker serves has the same ones.
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

# A request and its answer are one datagram each, far below this.
_MESSAGE_BYTES = 1 << 16


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--serve":
        return serve(int(argv[1]))
    # LOG_DIR: the cell's own folder, for LoadGen's logs and any other file the cell writes.
    return run_request(Path(argv[0]), Path(argv[1]), Path(argv[2]))


def serve(channel_fd: int) -> int:
    """Run the cells the sweep sends on the socket ``channel_fd`` one after another, until it
    closes the socket.

    A request is ``{"cell", "result", "log_dir"}`` (paths) with the cell's log file descriptor
    attached; this process's stdout and stderr point at that log while the cell runs, so that
    everything the cell prints, Python or native, lands in its own log. The answer
    ``{"code": N}`` (N as the one-cell form's exit status) is sent after the result is written.
    """
    import socket

    channel = socket.socket(fileno=channel_fd)
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(channel, _MESSAGE_BYTES, 1)
        except ConnectionError:
            return 0
        if not data:
            return 0  # the sweep is done with this worker
        request = json.loads(data)
        for fd in fds:
            _redirect_output(fd)
        code = run_request(Path(request["cell"]), Path(request["result"]), Path(request["log_dir"]))
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send(json.dumps({"code": code}).encode())
        _release_memory()


def run_request(cell_path: Path, result_path: Path, log_dir: Path) -> int:
    """Run the cell in ``cell_path`` and write its result to ``result_path``; returns the exit
    status the one-cell form exits with (0: ok, invalid or skipped; 1: failed)."""
    cell = json.loads(cell_path.read_text(encoding="utf-8"))
    if cell.get("trust_model"):
        from accelbench.runtimes.model_inspect import trust

        trust(*named_model_paths(cell))
    _reset_peak_rss()
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
    result["peak_rss_mb"] = _peak_rss_mb()
    write_result(result_path, result)
    return code


def _redirect_output(fd: int) -> None:
    """Point stdout and stderr (the file descriptors, which native code writes to) at fd."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _reset_peak_rss() -> None:
    """Start the kernel's peak resident memory (VmHWM) afresh, so that a cell's peak is its own
    even in a worker that ran other cells before (the resident memory it starts from is the
    interpreter and the frameworks already imported, as in a fresh worker once it imported them)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass  # not Linux: _peak_rss_mb falls back to the process's lifetime peak


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _release_memory() -> None:
    """Between cells: free what the last cell left (its runtime, its samples) and hand the
    freed heap back to the system, so that the next cell starts near a fresh worker's memory."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def named_model_paths(cell: dict[str, Any]) -> list[str]:
    """The model files a cell names (its own, and a paired cell's other sides)."""
    settings = cell.get("settings") or {}
    paths = [cell.get("model_path"), (settings.get("ab") or {}).get("new_path")]
    paths += [side.get("path") for side in settings.get("paired_sides") or []]
    return [p for p in paths if p]


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Apply the cell's worker environment, then measure it with its scenario's runner."""
    from accelbench.benchmarks.scenarios import scenario_info
    from accelbench.runner.suite import on_accelerator

    profile = _profile(cell)
    accelerated = on_accelerator(profile.kind, cell["execution"])
    applied = _worker_environment(cell, profile, accelerated)
    _injected_fault(cell)
    measured = scenario_info(cell["scenario"]).run(cell, log_dir)
    measured.setdefault("emulation", applied)
    return measured


def _profile(cell: dict[str, Any]) -> Any:
    from accelbench.hardware_profiles import HardwareProfile

    return HardwareProfile.model_validate(cell["profile_data"])


def run_paired_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The paired scenario's runner: artifacts timed together in this one worker (accelbench
    ab's two, or a suite model's optimizations against its fp32 artifact)."""
    from accelbench.benchmarks import paired

    if "paired_sides" in cell["settings"]:
        _leave_out_refused(cell, _profile(cell))
    return paired.run_cell(cell, log_dir)


def run_loadgen_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The LoadGen scenarios' runner: the cell's artifact opened in its runtime and measured
    by LoadGen (or projected from its graph on a projected device)."""
    from accelbench.hardware_profiles.emulation import check_artifact_supported
    from accelbench.records import metric
    from accelbench.runner.suite import on_accelerator

    profile = _profile(cell)
    execution = cell["execution"]
    threads = int(cell["threads"])
    accelerated = on_accelerator(profile.kind, execution)
    model_path = Path(cell["model_path"])
    result: dict[str, Any] = {"status": "ok", "error": None, "metrics": {}}
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
    if execution == "remote":
        from accelbench.runner.devices.cell import run_remote_cell

        return run_remote_cell(cell, profile, result, log_dir)

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
        from accelbench.benchmarks.utilization import utilization_metrics

        rate = samples_per_second(cell["scenario"], scenario.metrics)
        result["metrics"].update(utilization_metrics(result["runtime"], rate, profile))
    if execution == "emulated" and cost is not None and p50:
        result["projection"] = _project(cost, profile, cell.get("runtime"))
        result["metrics"]["projected_latency_ms"] = metric(
            result["projection"]["projected_latency_ms"], "ms", "lower"
        )
    return result


# This process's worker environment, set by its first cell: (what identifies it, what was applied).
_ENVIRONMENT: tuple[tuple[Any, ...], dict[str, Any]] | None = None


def _worker_environment(cell: dict[str, Any], profile: Any, accelerated: bool) -> dict[str, Any]:
    """Apply the cell's threads, affinity, memory cap and JAX platform, once per process, and
    return what was applied; a later cell must ask for the same (the sweep groups cells so)."""
    global _ENVIRONMENT
    wanted = (cell["profile"], cell["execution"], int(cell["threads"]), accelerated)
    if _ENVIRONMENT is not None:
        if _ENVIRONMENT[0] != wanted:
            raise RuntimeError(
                f"this worker runs cells of {_ENVIRONMENT[0]} (profile, execution, threads, "
                f"accelerated), and {cell.get('cell_id')} asks for {wanted}"
            )
        return dict(_ENVIRONMENT[1])
    applied: dict[str, Any] = {}
    if cell["execution"] == "emulated":
        from accelbench.hardware_profiles.emulation import apply_emulation

        # Before any interpreter import: thread pools and affinity are fixed at first use.
        applied = apply_emulation(profile, int(cell["threads"]))
    pin_jax_platform(accelerated)
    _ENVIRONMENT = (wanted, applied)
    return dict(applied)


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


def _project(cost: Any, profile: Any, runtime: str | None) -> dict[str, Any]:
    from accelbench.hardware_profiles.projection import projection_record

    return projection_record(cost, profile, runtime=runtime)


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
    result["projection"] = _project(cost, profile, cell.get("runtime"))
    result["metrics"]["projected_latency_ms"] = metric(
        result["projection"]["projected_latency_ms"], "ms", "lower"
    )
    return result


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
