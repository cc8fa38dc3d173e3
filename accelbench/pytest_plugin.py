"""pytest plugin: the ``accelbench_bench`` fixture and pytest-benchmark-compatible JSON output.

In a test::

    def test_detector_is_fast(accelbench_bench):
        result = accelbench_bench.latency("detector.tflite", threads=1)
        assert result.p99_ms < 5.0
        accelbench_bench.accuracy(0.93)  # optional; the model's size is recorded by itself

``latency`` runs the model in the real LiteRT runtime under MLPerf LoadGen (the same code as
``accelbench bench``) and returns LoadGen's numbers and the raw per-query latencies.
``pytest --accelbench-json out.json`` writes every measurement as a pytest-benchmark 5.x file
(raw timings in ``stats.data``; accuracy, size and sha256 in ``extra_info``), which
``accelbench compare old.json out.json`` and ``pytest-benchmark compare`` both read.

Frameworks are imported only when a test calls ``latency``: this module loads in every pytest
session of an environment where accelbench is installed.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from accelbench.errors import UsageError

_ENTRIES = pytest.StashKey[list]()
# Presets that keep LoadGen's trace, so the raw timings pytest-benchmark's stats need exist.
RAW_TIMING_PRESETS = ("quick", "standard")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("accelbench", "accelbench model benchmarks")
    group.addoption(
        "--accelbench-json",
        metavar="PATH",
        default=None,
        help="write the accelbench_bench measurements to PATH as pytest-benchmark 5.x JSON",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_ENTRIES] = []
    target = config.getoption("accelbench_json", None)
    if target and Path(target).is_dir():
        raise pytest.UsageError(f"--accelbench-json {target} is a folder; give a file path")


@dataclass
class LatencyResult:
    """One LoadGen run of a model: LoadGen's metrics, its verdict, the raw latencies, the model."""

    model: str
    sha256: str
    model_bytes: int
    scenario: str
    preset: str
    threads: int | None
    valid: bool
    metrics: dict[str, float | None]
    latencies_ms: list[float] = field(repr=False)

    @property
    def p50_ms(self) -> float | None:
        return self.metrics.get("latency_p50_ms")

    @property
    def p90_ms(self) -> float | None:
        return self.metrics.get("latency_p90_ms")

    @property
    def p99_ms(self) -> float | None:
        return self.metrics.get("latency_p99_ms")

    @property
    def qps(self) -> float | None:
        return self.metrics.get("qps")


class AccelbenchBench:
    """The ``accelbench_bench`` fixture: measure models in a test, record them for the JSON."""

    def __init__(self, node: pytest.Item, log_root: Path) -> None:
        self._node = node
        self._log_root = log_root
        self.entries: list[dict[str, Any]] = []
        self.quality: dict[str, Any] = {}

    def latency(
        self,
        model: str | Path,
        threads: int | None = 1,
        scenario: str = "single-stream",
        preset: str = "quick",
        inputs: str | Path | list | None = None,
        *,
        runtime: str | None = None,
        xnnpack: bool = True,
        name: str | None = None,
    ) -> LatencyResult:
        """Run `model` under LoadGen's `scenario` at `preset` and record the result.

        inputs: None for deterministic synthetic samples, a .npy/.npz path, or a list of samples
        (each a list of arrays, one per input). A relative model or inputs path that does not
        exist from the current folder is looked up next to the test file. name: tells several
        measurements in one test apart (their fullname is ``<test id>::<name>``).
        """
        from accelbench.benchmarks.loadgen import run_scenario
        from accelbench.records import artifact_info
        from accelbench.runtimes import open_runtime
        from accelbench.runtimes.inputs import DEFAULT_SAMPLE_COUNT, load_inputs, make_inputs

        if preset not in RAW_TIMING_PRESETS:
            raise UsageError(
                f"preset {preset!r} keeps no raw latencies, which the benchmark statistics need; "
                f"use {' or '.join(RAW_TIMING_PRESETS)}"
            )
        fullname = self._node.nodeid + (f"::{name}" if name else "")
        if any(e["fullname"] == fullname for e in self.entries):
            raise UsageError(
                f"{fullname} was already measured in this test; give each latency call its own "
                "name="
            )
        path = self._locate(model)
        artifact = artifact_info(path)
        opened = open_runtime(path, runtime, threads=threads, xnnpack=xnnpack)
        try:
            if inputs is None:
                samples = make_inputs(opened.inputs(), DEFAULT_SAMPLE_COUNT, seed=0)
            elif isinstance(inputs, str | Path):
                samples = load_inputs(self._locate(inputs), opened.inputs())
            else:
                samples = list(inputs)
            log_dir = self._log_root / f"{len(self.entries)}-{path.stem}"
            result = run_scenario(opened, samples, scenario, preset, log_dir)
            info = opened.info()
        finally:
            opened.close()
        if not result.latencies_ms:
            raise RuntimeError(f"LoadGen recorded no latencies for {path}; see {log_dir}")
        values = {k: m.get("value") for k, m in result.metrics.items()}
        measured = LatencyResult(
            model=str(path),
            sha256=artifact["sha256"],
            model_bytes=artifact["bytes"],
            scenario=scenario,
            preset=preset,
            threads=threads,
            valid=result.valid,
            metrics=values,
            latencies_ms=list(result.latencies_ms),
        )
        self.entries.append(_entry(self._node, fullname, name, measured, result, info))
        return measured

    def accuracy(
        self, value: float, metric: str = "accuracy", correct: list[bool] | None = None
    ) -> None:
        """Record a quality figure (higher is better) for this test's measurements.

        correct: optional per-example outcomes on the evaluation set, in a fixed order; with them
        ``accelbench compare`` judges accuracy by an exact McNemar test instead of exactly.
        """
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UsageError(f"accuracy value {value!r} is not a finite number; pass e.g. 0.93")
        if not metric.isidentifier():
            raise UsageError(f"metric name {metric!r} is not an identifier; use e.g. accuracy")
        self.quality[metric] = float(value)
        if correct is not None:
            if metric != "accuracy":
                raise UsageError("correct= goes with metric='accuracy' only")
            self.quality["correct_bits"] = "".join("1" if bool(c) else "0" for c in correct)

    def _locate(self, path: str | Path) -> Path:
        candidate = Path(path)
        if not candidate.exists() and not candidate.is_absolute():
            beside = Path(self._node.path).parent / candidate
            if beside.exists():
                return beside
        return candidate

    def _finish(self) -> list[dict[str, Any]]:
        if self.quality and not self.entries:
            self._node.warn(
                pytest.PytestWarning(
                    "accelbench_bench.accuracy() without latency() in the same test is not "
                    "written to --accelbench-json; measure the model's latency in that test"
                )
            )
        for entry in self.entries:
            entry["extra_info"].update(self.quality)
        return self.entries


@pytest.fixture
def accelbench_bench(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Measure a model's latency (LoadGen, real runtime) and record it for --accelbench-json."""
    bench = AccelbenchBench(request.node, tmp_path_factory.mktemp("accelbench"))
    yield bench
    request.config.stash[_ENTRIES].extend(bench._finish())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    entries = config.stash.get(_ENTRIES, [])
    if not entries:
        return
    terminalreporter.section("accelbench")
    for entry in entries:
        info = entry["extra_info"]
        parts = [
            f"{key.removeprefix('latency_').removesuffix('_ms')} {info[key]:.4g} ms"
            for key in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")
            if info.get(key) is not None
        ]
        verdict = "VALID" if info.get("valid") else "INVALID"
        terminalreporter.write_line(f"{entry['fullname']}: {', '.join(parts)} (LoadGen {verdict})")
    target = config.getoption("accelbench_json", None)
    if target:
        terminalreporter.write_line(f"wrote {len(entries)} measurements to {target}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption("accelbench_json", None)
    if not target:
        return
    from accelbench.report.pytest_benchmark import write_file

    write_file(target, build_json(session.config.stash.get(_ENTRIES, []), session.config))


def build_json(entries: list[dict[str, Any]], config: pytest.Config) -> dict[str, Any]:
    """The pytest-benchmark 5.x document of these entries, with this machine and commit."""
    from accelbench.hardware_profiles.host import environment_fingerprint
    from accelbench.report.pytest_benchmark import WRITTEN_VERSION

    environment = environment_fingerprint()
    machine_info = {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {"brand_raw": environment["cpu_model"], "count": environment["logical_cores"]},
        "accelbench": environment,
    }
    commit_info = {
        "id": environment.get("git_commit") or "unversioned",
        "time": None,
        "author_time": None,
        "dirty": bool(environment.get("git_dirty")),
        "project": Path(str(config.rootpath)).name,
        "branch": "(unknown)",
    }
    return {
        "machine_info": machine_info,
        "commit_info": commit_info,
        "benchmarks": entries,
        "datetime": datetime.now(UTC).isoformat(),
        "version": WRITTEN_VERSION,
    }


def _entry(
    node: pytest.Item,
    fullname: str,
    name: str | None,
    measured: LatencyResult,
    result: Any,
    runtime_info: dict[str, Any],
) -> dict[str, Any]:
    """One pytest-benchmark ``benchmarks[]`` item; stats from LoadGen's raw latencies in s."""
    from accelbench.stats import benchmark_stats

    data_s = [ms / 1e3 for ms in measured.latencies_ms]
    callspec = getattr(node, "callspec", None)
    params = {k: _plain(v) for k, v in callspec.params.items()} if callspec else None
    extra_info = {
        "model": measured.model,
        "sha256": measured.sha256,
        "model_bytes": measured.model_bytes,
        "runtime": runtime_info.get("runtime"),
        "threads": measured.threads,
        "scenario": measured.scenario,
        "preset": measured.preset,
        "valid": measured.valid,
        "result_validity": result.result_validity,
        "comparable_to_mlperf": result.comparable_to_mlperf,
        **{k: v for k, v in measured.metrics.items() if k.startswith("latency_") or k == "qps"},
    }
    return {
        "group": None,
        "name": node.name + (f"::{name}" if name else ""),
        "fullname": fullname,
        "params": params,
        "param": callspec.id if callspec else None,
        "extra_info": extra_info,
        "options": {
            "disable_gc": False,
            "timer": "mlperf_loadgen",
            "min_rounds": len(data_s),
            "max_time": None,
            "min_time": None,
            "warmup": True,
        },
        "stats": {**benchmark_stats(data_s), "data": data_s, "iterations": 1},
    }


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
