"""Runs on the device: its fingerprint, or one single-stream cell timed there, as one JSON line.

Copied to the device beside the edge runner (edge.py) and run with the device's own Python:

    python device_cell.py fingerprint
    python device_cell.py measure < SPEC.json

It imports only the standard library until it measures; then numpy, the edge runner and its one
interpreter package, and MLPerf LoadGen when the device has it (else a timed loop, which the
result says). Nothing from accelbench: the device need not have it.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

# Distribution names whose versions the fingerprint reports (None: not installed).
PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "tensorflow", "mlcommons-loadgen")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 2)
    except OSError:
        pass
    return None


def fingerprint() -> dict[str, Any]:
    """The device's own environment: CPU, cores, memory, OS, Python and package versions."""
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "packages": {name: _version(name) for name in PACKAGES},
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the model in the edge runner and time single-stream queries, one at a time."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np

    edge = importlib.import_module("edge")
    t0 = time.perf_counter()
    runtime = edge.TFLiteRuntime(
        spec["model"], threads=spec["threads"], xnnpack=spec["xnnpack"], interpreter="auto"
    )
    load_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(spec["seed"])
    samples = [
        edge.random_inputs(runtime.inputs(), batch_size=1, rng=rng)
        for _ in range(spec["sample_count"])
    ]
    if runtime.max_batch_size is None:
        runtime.set_batch_size(1)
    t0 = time.perf_counter()
    runtime.run(samples[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    loadgen_values: dict[str, Any] = {}
    try:
        import mlperf_loadgen  # noqa: F401 - only whether the device has it
    except ImportError:
        timing, latencies, duration_s = "timed-loop", *_timed_loop(runtime, samples, spec)
    else:
        timing, latencies, duration_s = "loadgen", *_loadgen(runtime, samples, spec, first_ms)
        loadgen_values = _detail_values(os.path.join(spec["log_dir"], "mlperf_log_detail.txt"))
    info = runtime.info()
    runtime.close()
    return {
        "timing": timing,
        "loadgen_values": loadgen_values,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "latencies_ms": latencies,
        "duration_s": duration_s,
        "runtime": info,
    }


def _timed_loop(
    runtime: Any, samples: list[Any], spec: dict[str, Any]
) -> tuple[list[float], float]:
    """Queries back to back until both the minimum duration and count are reached (or the cap)."""
    latencies: list[float] = []
    min_s, cap_s = spec["min_duration_ms"] / 1e3, spec["max_duration_ms"] / 1e3
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        enough = elapsed >= min_s and len(latencies) >= spec["min_query_count"]
        if enough or (cap_s and elapsed >= cap_s):
            return latencies, elapsed
        t0 = time.perf_counter()
        runtime.run(samples[len(latencies) % len(samples)])
        latencies.append((time.perf_counter() - t0) * 1e3)


def _loadgen(
    runtime: Any, samples: list[Any], spec: dict[str, Any], expected_ms: float
) -> tuple[list[float], float]:
    """LoadGen's SingleStream scenario issues the queries; each is answered as it is run."""
    import mlperf_loadgen as lg
    import numpy as np

    latencies: list[float] = []

    def issue(queries: list[Any]) -> None:
        for query in queries:
            t0 = time.perf_counter()
            outputs = runtime.run(samples[query.index % len(samples)])
            latencies.append((time.perf_counter() - t0) * 1e3)
            # The output's bytes go back to LoadGen, as a local cell's system under test does.
            first = np.ascontiguousarray(outputs[0])
            response = lg.QuerySampleResponse(query.id, first.ctypes.data, first.nbytes)
            lg.QuerySamplesComplete([response])

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.SingleStream
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(spec["min_duration_ms"])
    settings.min_query_count = int(spec["min_query_count"])
    settings.max_duration_ms = int(spec["max_duration_ms"])
    settings.single_stream_expected_latency_ns = max(int(expected_ms * 1e6), 1)
    log = lg.LogSettings()
    log.log_output.outdir = spec["log_dir"]
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = bool(spec.get("trace"))
    count = len(samples)
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(count, count, lambda _s: None, lambda _s: None)
    start = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    return latencies, time.perf_counter() - start


def _detail_values(path: str) -> dict[str, Any]:
    """LoadGen's results from its detail log (one ':::MLLOG {json}' entry a line): its own
    latency percentiles, as a local cell reports them."""
    values: dict[str, Any] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            for line in log:
                _, marker, payload = line.partition(":::MLLOG")
                if not marker:
                    continue
                try:
                    entry = json.loads(payload)
                except json.JSONDecodeError:
                    continue
                key = str(entry.get("key"))
                if key.startswith("result_") or key == "effective_samples_per_query":
                    values[key] = entry.get("value")
    except OSError:
        pass
    return values


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["fingerprint"]:
            print(json.dumps(fingerprint()))
            return 0
        if argv[:1] == ["measure"]:
            spec = json.load(sys.stdin)
            os.makedirs(spec["log_dir"], exist_ok=True)
            result = measure(spec)
            result["fingerprint"] = fingerprint()
            print(json.dumps(result))
            return 0
    except (ImportError, ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        print(f"device_cell.py: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print("usage: device_cell.py fingerprint | measure < SPEC.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
