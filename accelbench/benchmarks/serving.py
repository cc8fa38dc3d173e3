"""The serving scenario: an HTTP endpoint under LoadGen, its latency-QPS curve and its peak QPS.

Two users: ``accelbench load URL`` measures any TensorFlow Serving REST endpoint, and the suite
scenario ``serving`` (``check_options``, ``run_cell``) starts accelbench's own server on loopback
for a cell's artifact once per mode (``online``: one request per inference; ``batching``: dynamic
batching with TensorFlow Serving's parameters; ``cache``: the LRU response cache), measures it,
and stops it, whatever happens.

The peak search is a sweep, each point a LoadGen Server run (PerformanceOnly) judged VALID or
INVALID by LoadGen itself against the latency bound: an Offline run measures the endpoint's
capacity, ``curve_points`` target QPS spread up to that capacity give the latency-throughput
curve, and ``search_steps`` bisections narrow the gap between the highest target that met the
bound and the lowest that did not. A point meets the bound only when LoadGen says VALID and no
request failed. The peak is then confirmed: its target is run again and kept only if that run
meets the bound too; if not, the next lower target that met it is tried the same way, or, when
none is left, half the lowest target tried; once a peak holds twice, runs left search the gap up
to the target whose re-run missed (at most ``MAX_CONFIRMATIONS`` more runs in all), so one lucky
run on a noisy machine is not the reported peak.
LoadGen's own FindPeakPerformance mode (TestMode.FindPeakPerformance, present in LoadGen 6.0) is
not used: this sweep keeps every run's own LoadGen result, which is the curve the report plots,
and runs a known number of tests (at most 1 + curve_points + search_steps + MAX_CONFIRMATIONS),
so a cell's time is bounded.

Importing this module imports no framework (``check_options`` runs when a suite is read).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.processes import spawn_group, stop_group
from accelbench.serving import LISTENING_PREFIX

MODES = ("online", "batching", "cache")
STOP_GRACE_S = 10.0
# Bisection above the highest target that met the bound when none failed yet.
GROWTH = 1.5
# Runs after the bisection that confirm the peak: re-runs of it, or new targets below it or in
# the gap a failed re-run left above it.
MAX_CONFIRMATIONS = 4
# TensorFlow Serving's batching parameters, as its batching guide starts CPU serving: batches
# of up to 32, a short wait to fill them, a bounded queue. num_batch_threads None leaves the
# server's own default (the same in every mode, so the modes differ only in batching and cache).
DEFAULTS: dict[str, Any] = {
    "modes": list(MODES),
    "latency_bound_ms": None,  # None: LoadGen's Server rule (10 ms in LoadGen 6.0)
    "curve_points": 4,
    "search_steps": 3,
    "max_qps": None,  # the curve's top target QPS; None: measured by an Offline run
    "concurrency": 64,
    "max_batch_size": 32,
    "batch_timeout_us": 1000,
    "max_enqueued_batches": 100,
    "num_batch_threads": None,
    "cache_size": 1024,
    "startup_timeout_s": 60.0,
}
_POSITIVE_INTS = (
    "curve_points",
    "concurrency",
    "max_batch_size",
    "max_enqueued_batches",
    "cache_size",
)


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The suite's ``serving:`` mapping checked, with every default filled in."""
    if not isinstance(options, dict):
        raise UsageError("serving options must be a mapping, for example {modes: [online]}")
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r}; the keys are {', '.join(DEFAULTS)}")
    checked = {**DEFAULTS, **options}
    modes = checked["modes"]
    if isinstance(modes, str):
        modes = [modes]
    if not isinstance(modes, list) or not modes:
        raise UsageError(f"modes must be a list of {', '.join(MODES)}")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UsageError(f"modes: unknown mode {bad[0]!r}; use {', '.join(MODES)}")
    checked["modes"] = list(dict.fromkeys(modes))
    for key in _POSITIVE_INTS:
        _check_int(key, checked[key], minimum=1)
    _check_int("search_steps", checked["search_steps"], minimum=0)
    _check_int("batch_timeout_us", checked["batch_timeout_us"], minimum=0)
    if checked["num_batch_threads"] is not None:
        _check_int("num_batch_threads", checked["num_batch_threads"], minimum=1)
    for key in ("latency_bound_ms", "max_qps", "startup_timeout_s"):
        value = checked[key]
        if value is None and key != "startup_timeout_s":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise UsageError(f"{key} must be a positive number, not {value!r}")
        checked[key] = float(value)
    return checked


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{key} must be an integer >= {minimum}, not {value!r}")


def loadgen_latency_bound_ms() -> float:
    """LoadGen's own Server latency bound for a generic model (its built-in rule)."""
    from accelbench.benchmarks.loadgen.settings import base_settings

    return base_settings("server").server_target_latency_ns / 1e6


# --- one LoadGen run against an endpoint ---


@dataclass
class EndpointRun:
    """One LoadGen test against an endpoint, with what came back for its requests."""

    scenario: Any  # accelbench.benchmarks.loadgen.ScenarioResult
    requests: dict[str, Any]
    target_qps: float | None = None

    @property
    def meets_bound(self) -> bool:
        return bool(self.scenario.valid) and self.requests["errors"] == 0

    def point(self) -> dict[str, Any]:
        """This run as one point of a latency-throughput curve."""
        values = {k: m["value"] for k, m in self.scenario.metrics.items()}
        return {
            "target_qps": self.target_qps,
            "achieved_qps": values.get("qps"),
            "scheduled_qps": values.get("scheduled_qps"),
            **{k: values.get(k) for k in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")},
            "loadgen_valid": bool(self.scenario.valid),
            "requests": self.requests["requests"],
            "errors": self.requests["errors"],
            "meets_bound": self.meets_bound,
            "log_dir": self.scenario.settings["log"]["outdir"],
        }

    def result(self) -> dict[str, Any]:
        """A record's part: status, error, metrics (LoadGen's and the request counts), LoadGen."""
        # Here, not at the top: `accelbench --help` imports this module (load's defaults), and
        # accelbench.records brings in pydantic.
        from accelbench.records import metric

        counts = self.requests
        loadgen = {k: v for k, v in self.scenario.to_dict().items() if k != "metrics"}
        raw = loadgen.pop("latencies_ms", [])
        status, error = "ok", None
        if counts["requests"] and not counts["ok"]:
            status = "failed"
            error = f"every request failed ({counts['errors']}); first: {counts['first_error']}"
        elif counts["errors"]:
            status = "invalid"
            error = (
                f"{counts['errors']} of {counts['requests']} requests failed "
                f"(HTTP 429: {counts['http_429']}); first: {counts['first_error']}"
            )
        elif not self.scenario.valid:
            status = "invalid"
            failed = [k for k, ok in self.scenario.criteria.items() if not ok]
            error = "LoadGen result INVALID: " + (", ".join(failed) or "see the log")
        metrics = dict(self.scenario.metrics)
        metrics["request_errors"] = metric(counts["errors"], "requests", "lower")
        metrics["http_429_count"] = metric(counts["http_429"], "requests", "lower")
        return {
            "status": status,
            "error": error,
            "metrics": metrics,
            "loadgen": loadgen,
            "raw_latencies_ms": raw,
            "settings": {"requests": counts},
        }


def run_endpoint(
    runtime: Any,
    samples: list[Any],
    scenario: str,
    preset: str,
    log_dir: Path,
    *,
    target_qps: float | None = None,
    latency_bound_ms: float | None = None,
) -> EndpointRun:
    """One LoadGen scenario against a RemoteRuntime, its request counts taken for this run only."""
    from accelbench.benchmarks.loadgen import run_scenario

    runtime.reset_counters()
    result = run_scenario(
        runtime,
        samples,
        scenario,
        preset,
        log_dir,
        target_qps=target_qps,
        target_latency_ms=latency_bound_ms if scenario == "server" else None,
    )
    return EndpointRun(result, runtime.counters().to_dict(), target_qps)


# --- the curve and the peak ---


@dataclass
class PeakSearch:
    """The Offline capacity probe, every Server run of the sweep, and the peak among them."""

    latency_bound_ms: float
    capacity: EndpointRun | None
    runs: list[EndpointRun] = field(default_factory=list)

    def _kept(self) -> list[list[EndpointRun]]:
        """The runs of each target at which every run met the bound, highest target first."""
        by_target = _by_target(self.runs)
        return [by_target[t] for t in sorted(_split(self.runs)[0], reverse=True)]

    @property
    def peak(self) -> EndpointRun | None:
        """The highest target whose every run met the bound; of its runs, the one with the
        higher p99."""
        kept = self._kept()
        if not kept:
            return None
        return max(kept[0], key=lambda r: r.point()["latency_p99_ms"] or 0.0)

    @property
    def peak_confirmed(self) -> bool:
        """Whether the peak's target met the bound in more than one run."""
        kept = self._kept()
        return bool(kept) and len(kept[0]) > 1

    def curve(self) -> list[dict[str, Any]]:
        return sorted((r.point() for r in self.runs), key=lambda p: p["target_qps"] or 0.0)

    def result(self) -> dict[str, Any]:
        """A record's part: the peak run's metrics plus server_peak_qps, and the curve."""
        from accelbench.records import metric  # not at the top: see EndpointRun.result

        settings = {
            "latency_bound_ms": self.latency_bound_ms,
            "curve": self.curve(),
            "search": "sweep and bisection of LoadGen Server runs (PerformanceOnly); the peak "
            "target re-run and kept only if every run at it met the bound",
            "peak_confirmed": self.peak_confirmed,
        }
        capacity_qps = None
        if self.capacity is not None:
            capacity_qps = self.capacity.scenario.metrics.get("qps", {}).get("value")
            settings["capacity"] = self.capacity.point() | {"scenario": "offline"}
        peak = self.peak
        if peak is None:
            base = (self.runs[0] if self.runs else self.capacity).result()  # type: ignore[union-attr]
            if base["status"] != "failed":
                lowest = min(self.runs, key=lambda r: r.target_qps or 0.0) if self.runs else None
                base["status"] = "invalid"
                base["error"] = f"no target QPS kept p99 under {self.latency_bound_ms:g} ms" + (
                    f" (lowest tried {lowest.target_qps:.4g} QPS: p99 "
                    f"{lowest.point()['latency_p99_ms']} ms, {lowest.requests['errors']} errors)"
                    if lowest
                    else ""
                )
            peak_qps = None
        else:
            base = peak.result()
            peak_qps = peak.target_qps
        base["metrics"]["server_peak_qps"] = metric(peak_qps, "qps", "higher")
        if capacity_qps is not None:
            base["metrics"]["offline_capacity_qps"] = metric(capacity_qps, "samples/s", "higher")
        base["settings"] = {**base["settings"], **settings}
        return base


def find_peak(
    runtime: Any,
    samples: list[Any],
    preset: str,
    log_dir: Path,
    *,
    latency_bound_ms: float | None = None,
    curve_points: int = DEFAULTS["curve_points"],
    search_steps: int = DEFAULTS["search_steps"],
    start_qps: float | None = None,
) -> PeakSearch:
    """The highest Server target QPS that LoadGen judges VALID under the latency bound.

    start_qps replaces the Offline capacity probe as the top of the curve when given.
    """
    bound = latency_bound_ms or loadgen_latency_bound_ms()
    search = PeakSearch(latency_bound_ms=bound, capacity=None)
    top = start_qps
    if top is None:
        search.capacity = run_endpoint(runtime, samples, "offline", preset, log_dir / "capacity")
        if not search.capacity.requests["ok"]:
            return search  # every request failed: nothing to search
        top = search.capacity.scenario.metrics["qps"]["value"]
    for i in range(curve_points):
        target = top * (i + 1) / curve_points
        search.runs.append(_server_run(runtime, samples, preset, log_dir, target, bound))
    for _ in range(search_steps):
        target = _next_target(search.runs)
        if target is None:
            break
        search.runs.append(_server_run(runtime, samples, preset, log_dir, target, bound))
    for left in range(MAX_CONFIRMATIONS, 0, -1):
        if not any(r.meets_bound for r in search.runs):
            break  # no target ever met the bound: nothing to confirm
        peak = search.peak
        if peak is None:  # every target that met the bound missed it when re-run: look lower
            target, suffix = _next_target(search.runs) or 0.0, ""
        elif not search.peak_confirmed:  # met the bound once: run it again
            target, suffix = peak.target_qps or 0.0, "-again"
        else:  # confirmed: a re-run that missed may have left a gap above it to search
            missed_above = [t for t in _split(search.runs)[1] if t > (peak.target_qps or 0.0)]
            gap = _next_target(search.runs)
            if gap is None or not missed_above or left < 2:  # a new target needs 2 runs
                break
            target, suffix = gap, ""
        search.runs.append(_server_run(runtime, samples, preset, log_dir, target, bound, suffix))
    return search


def _server_run(
    runtime: Any,
    samples: list[Any],
    preset: str,
    log_dir: Path,
    qps: float,
    bound: float,
    suffix: str = "",
) -> EndpointRun:
    where = log_dir / f"server-{qps:.6g}qps{suffix}"
    return run_endpoint(
        runtime, samples, "server", preset, where, target_qps=qps, latency_bound_ms=bound
    )


def _by_target(runs: list[EndpointRun]) -> dict[float, list[EndpointRun]]:
    by_target: dict[float, list[EndpointRun]] = {}
    for r in runs:
        by_target.setdefault(r.target_qps or 0.0, []).append(r)
    return by_target


def split_targets(verdicts: Iterable[tuple[float, bool]]) -> tuple[list[float], list[float]]:
    """From (target QPS, met the bound) per run: the targets that met it in every run at them,
    and those that missed it in any (the peak search runs its peak's target twice)."""
    met: dict[float, bool] = {}
    for target, ok in verdicts:
        met[target] = met.get(target, True) and ok
    return [t for t, ok in met.items() if ok], [t for t, ok in met.items() if not ok]


def _split(runs: list[EndpointRun]) -> tuple[list[float], list[float]]:
    return split_targets((r.target_qps or 0.0, r.meets_bound) for r in runs)


def _next_target(runs: list[EndpointRun]) -> float | None:
    """Halfway between the highest target that met the bound and the lowest above it that missed
    (a target met it only if every run at it did)."""
    met, missed = _split(runs)
    if not met:
        return min(missed) / 2
    low = max(met)
    above = [t for t in missed if t > low]
    if not above:
        return low * GROWTH
    high = min(above)
    if (high - low) / high < 0.02:
        return None  # within 2%: LoadGen's own run-to-run noise is larger
    return (low + high) / 2


# --- accelbench's own server, for the suite scenario ---


class ServerProcess:
    """``python -m accelbench.cli.serve_subprocess`` on loopback, in a process group of its own.

    The server is told to die with this process (Linux PR_SET_PDEATHSIG, set by a small launcher
    before it execs the server), so even a worker killed by the sweep's timeout leaves no server
    behind; ``stop`` ends the whole group, politely first.
    """

    def __init__(self, args: list[str], log_path: Path, startup_timeout_s: float) -> None:
        self.log_path = log_path
        self.url: str | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.command = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        self.proc = spawn_group(self.command, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self._reader = threading.Thread(target=self._read, name="accelbench-server-out")
        self._reader.daemon = True
        self._reader.start()
        try:
            self._wait_ready(startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # drained to the end, so the server never blocks on it
            line = raw.decode("utf-8", "replace").rstrip()
            if self.url is None and line.startswith(LISTENING_PREFIX):
                self.url = line.removeprefix(LISTENING_PREFIX).strip()
                self._ready.set()
            else:
                self._lines.append(line)
        self._ready.set()

    def _wait_ready(self, timeout_s: float) -> None:
        if not self._ready.wait(timeout_s):
            raise RuntimeError(
                f"the server did not say it was listening within {timeout_s:g} s; "
                f"see {self.log_path}"
            )
        if self.url is None:
            self.proc.wait(timeout=5)
            raise RuntimeError(
                f"the server exited with status {self.proc.returncode} before listening: "
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        lines = [ln for ln in text if ln.strip()] + self._lines
        return lines[-1] if lines else f"no output (see {self.log_path})"

    def stop(self) -> int | None:
        """End the server's process group (SIGTERM, then SIGKILL after a grace); its exit code."""
        # Whatever the server started is in its group: nothing of it may outlive the cell.
        code = stop_group(self.proc, STOP_GRACE_S)
        self._reader.join(timeout=5)
        self._log.close()
        return code


# Runs in the child before the server: asks the kernel to SIGKILL it when its parent dies (kept
# across exec), gives up if the parent is already gone, then becomes the server.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.execv(sys.executable,"
    " [sys.executable, '-m', 'accelbench.cli.serve_subprocess', *sys.argv[2:]])\n"
)


def server_args(cell: dict[str, Any], options: dict[str, Any], mode: str) -> list[str]:
    """The server's command-line arguments for a cell and a mode."""
    # The server binds to loopback unless told otherwise.
    args = [cell["model_path"], "--name", cell["model"], "--port", "0"]
    args += ["--threads", str(int(cell["threads"]))]
    if cell.get("trust_model"):
        args.append("--trust-model")  # the cell's own trust (the server re-checks the model)
    if cell.get("runtime"):
        args += ["--runtime", cell["runtime"]]
    if mode == "batching":
        args += [
            "--max-batch-size",
            str(options["max_batch_size"]),
            "--batch-timeout-us",
            str(options["batch_timeout_us"]),
            "--max-enqueued-batches",
            str(options["max_enqueued_batches"]),
        ]
    elif mode == "cache":
        args += ["--cache-size", str(options["cache_size"])]
    if options["num_batch_threads"] is not None:
        args += ["--num-batch-threads", str(options["num_batch_threads"])]
    return args


def mode_settings(options: dict[str, Any], mode: str) -> dict[str, Any]:
    """The serving settings a mode asks the server for, as a record keeps them."""
    settings: dict[str, Any] = {
        "batching": False,
        "cache_size": 0,
        "num_batch_threads": options["num_batch_threads"] or "server default",
    }
    if mode == "batching":
        settings.update(
            batching=True,
            max_batch_size=options["max_batch_size"],
            batch_timeout_us=options["batch_timeout_us"],
            max_enqueued_batches=options["max_enqueued_batches"],
        )
    elif mode == "cache":
        settings["cache_size"] = options["cache_size"]
    return settings


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The suite's serving scenario for one artifact: one sub-record per mode (key = mode)."""
    from accelbench.records import artifact_info

    options = check_options(cell["settings"].get("serving") or {})
    # The server itself refuses an artifact it cannot serve, and says why (that mode's record).
    model_path = Path(cell["model_path"])
    bound = options["latency_bound_ms"] or loadgen_latency_bound_ms()
    parts = []
    for mode in options["modes"]:
        part = _measure_mode(cell, options, mode, bound, log_dir / mode)
        part["key"] = mode
        part["settings"] = {
            "mode": mode,
            "serving_mode": mode_settings(options, mode),
            **part.get("settings", {}),
        }
        parts.append(part)
    return {
        "status": "ok",
        "error": None,
        "artifact": artifact_info(model_path),
        "metrics": {},
        "settings": {"serving": {**options, "latency_bound_ms": bound}},
        "runtime": parts[0].get("runtime") if parts else None,
        "records": parts,
    }


def _measure_mode(
    cell: dict[str, Any], options: dict[str, Any], mode: str, bound: float, log_dir: Path
) -> dict[str, Any]:
    from accelbench.runtimes.remote import RemoteRuntime, probe_endpoint

    server = None
    runtime = None
    try:
        server = ServerProcess(
            server_args(cell, options, mode), log_dir / "server.log", options["startup_timeout_s"]
        )
        assert server.url is not None
        runtime = RemoteRuntime(
            probe_endpoint(server.url, cell["model"]), concurrency=options["concurrency"]
        )
        samples = endpoint_samples(runtime, cell.get("inputs_path"), int(cell["seed"]))
        search = find_peak(
            runtime,
            samples,
            cell["preset"],
            log_dir,
            latency_bound_ms=bound,
            curve_points=options["curve_points"],
            search_steps=options["search_steps"],
            start_qps=options["max_qps"],
        )
        result = search.result()
        result["settings"]["server"] = fetch_server_stats(runtime.endpoint)
        result["settings"]["url"] = server.url
        result["runtime"] = runtime.info()
        return result
    except Exception as exc:  # noqa: BLE001 - one mode failing is that mode's record
        from accelbench.errors import failure_reason

        return {"status": "failed", "error": f"{mode}: {failure_reason(exc)}", "metrics": {}}
    finally:
        if runtime is not None:
            runtime.close()
        if server is not None:
            server.stop()


def endpoint_samples(runtime: Any, inputs_path: str | None, seed: int) -> list[Any]:
    """The QSL for an endpoint: the user's inputs, or synthetic ones from its metadata."""
    from accelbench.runtimes.inputs import DEFAULT_SAMPLE_COUNT, load_inputs, make_inputs

    specs = runtime.inputs()
    if inputs_path:
        return load_inputs(inputs_path, specs)
    return make_inputs(specs, DEFAULT_SAMPLE_COUNT, seed=seed)


def fetch_server_stats(endpoint: Any) -> dict[str, Any] | None:
    """The server's settings and counters now (accelbench's own endpoint only, else None)."""
    from accelbench.runtimes.remote import STATS_PATH, get_json

    code, stats = get_json(
        endpoint.url + STATS_PATH, 5.0, quiet=True, api_key=getattr(endpoint, "api_key", None)
    )
    return stats if code == 200 else endpoint.server_stats
