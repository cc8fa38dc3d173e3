"""pytest-benchmark JSON (5.x schema): read into accelbench records, and written from them.

A pytest-benchmark file holds one run: ``machine_info``, ``commit_info``, ``datetime``,
``version`` and ``benchmarks[]`` of ``{name, fullname, group, params, param, stats, options,
extra_info}``. Each benchmark becomes one record whose ``cell_id`` is its ``fullname`` (the test's
logical identity, stable across commits), with its timings in milliseconds:
``latency_p50_ms`` (the median), ``latency_mean_ms``, ``latency_min_ms``, ``latency_max_ms``,
``qps`` (pytest-benchmark's ops) and, when ``stats.data`` is present
(``--benchmark-save-data``), the raw timings as ``raw_latencies_ms``. ``extra_info`` may carry
``accuracy``, ``model_bytes``, ``sha256`` and ``correct_bits`` (as accelbench's plugin writes).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import metric, write_atomic

# The schema read here is 5.x's; 4.x wrote the same fields (4.0 dropped Python 2, not fields).
SUPPORTED_MAJOR_VERSIONS = (4, 5)
SUPPORTED_TEXT = "4.x and 5.x"
# The version pytest-benchmark files written by accelbench's plugin claim: the schema they follow.
WRITTEN_VERSION = "5.1.0"
HISTORY_FILE = re.compile(r"^(\d{4})_.*\.json$")
# stats key -> (metric name, scale to ms or identity, unit, direction)
_STAT_METRICS = (
    ("median", "latency_p50_ms", 1e3, "ms", "lower"),
    ("mean", "latency_mean_ms", 1e3, "ms", "lower"),
    ("min", "latency_min_ms", 1e3, "ms", "lower"),
    ("max", "latency_max_ms", 1e3, "ms", "lower"),
    ("stddev", "latency_stddev_ms", 1e3, "ms", "lower"),
    ("ops", "qps", 1.0, "ops/s", "higher"),
    ("rounds", "rounds", 1, "rounds", "none"),
)
_EXTRA_METRICS = (
    ("accuracy", "fraction", "higher"),
    ("auc", "fraction", "higher"),
    ("model_bytes", "bytes", "lower"),
    ("model_gzip_bytes", "bytes", "lower"),
)


def looks_like_pytest_benchmark(payload: Any) -> bool:
    """True for a JSON object with a ``benchmarks`` list (what every pytest-benchmark file has)."""
    return isinstance(payload, dict) and isinstance(payload.get("benchmarks"), list)


def read_file(path: str | Path) -> dict[str, Any]:
    """The parsed file, checked: readable JSON of a supported pytest-benchmark version."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist; pass a pytest-benchmark JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); the file is corrupt") from None
    if not looks_like_pytest_benchmark(payload):
        raise UsageError(f"{path} has no 'benchmarks' list; it is not a pytest-benchmark JSON file")
    check_version(payload.get("version"), path)
    return payload


def check_version(version: Any, path: str | Path) -> None:
    """A UsageError naming the version unless it is one whose schema is read here."""
    match = re.match(r"^(\d+)\.", str(version)) if isinstance(version, str) else None
    if match is None or int(match.group(1)) not in SUPPORTED_MAJOR_VERSIONS:
        raise UsageError(
            f"{path} was written by pytest-benchmark {version!r}, which accelbench cannot read; "
            f"supported versions are {SUPPORTED_TEXT}"
        )


def to_records(payload: dict[str, Any], path: str | Path) -> list[dict[str, Any]]:
    """One accelbench record per benchmark, cell_id = fullname; bad entries are a UsageError."""
    host = host_fingerprint(payload.get("machine_info") or {})
    environment = {
        "host_fingerprint_id": host,
        "git_commit": (payload.get("commit_info") or {}).get("id"),
        "pytest_benchmark_version": payload.get("version"),
    }
    records = []
    for number, bench in enumerate(payload["benchmarks"], start=1):
        if not isinstance(bench, dict) or not isinstance(bench.get("fullname"), str):
            raise UsageError(f"benchmark {number} of {path} has no fullname; the file is corrupt")
        stats = bench.get("stats")
        if not isinstance(stats, dict):
            raise UsageError(f"benchmark {bench['fullname']} of {path} has no stats; it is corrupt")
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        metrics: dict[str, dict[str, Any]] = {}
        for key, name, scale, unit, direction in _STAT_METRICS:
            value = stats.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[name] = metric(value * scale, unit, direction)
        for name, unit, direction in _EXTRA_METRICS:
            value = extra.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[name] = metric(value, unit, direction)
        data = stats.get("data")
        raw_ms = [float(x) * 1e3 for x in data] if isinstance(data, list) else []
        record: dict[str, Any] = {
            "cell_id": bench["fullname"],
            "model": extra.get("model") or bench.get("name"),
            "scenario": extra.get("scenario") or "pytest-benchmark",
            # pytest-benchmark times its function in the test process, on this machine.
            "execution": "local",
            "status": "ok",
            "metrics": metrics,
            "raw_latencies_ms": raw_ms,
            "artifact": {"sha256": extra.get("sha256")},
            "environment": environment,
            "finished_at": payload.get("datetime"),
            "settings": {"group": bench.get("group"), "params": bench.get("params")},
        }
        if isinstance(extra.get("correct_bits"), str):
            record["quality"] = {"correct_bits": extra["correct_bits"]}
        records.append(record)
    if not records:
        raise UsageError(f"{path} holds no benchmarks; run pytest with benchmarks first")
    return records


def host_fingerprint(machine_info: dict[str, Any]) -> str:
    """accelbench's fingerprint when the file carries it, else a hash of the hardware fields."""
    ours = machine_info.get("accelbench")
    if isinstance(ours, dict) and isinstance(ours.get("host_fingerprint_id"), str):
        return ours["host_fingerprint_id"]
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    identity = {
        "machine": machine_info.get("machine"),
        "system": machine_info.get("system"),
        "cpu": cpu.get("brand_raw") or machine_info.get("processor"),
        "cores": cpu.get("count"),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return "pb-" + digest[:12]


def history_files(folder: str | Path) -> list[Path]:
    """A pytest-benchmark storage's ``NNNN_*.json`` files, oldest first (in one machine folder).

    ``folder`` is the machine folder itself or the storage above it (``.benchmarks``) when that
    holds a single machine folder; several machines are ambiguous, so a UsageError names them.
    """
    folder = Path(folder)
    direct = _numbered(folder)
    if not direct:
        machines = sorted(d for d in folder.iterdir() if d.is_dir() and _numbered(d))
        if len(machines) > 1:
            raise UsageError(
                f"{folder} holds pytest-benchmark runs of {len(machines)} machines ("
                + ", ".join(m.name for m in machines)
                + "); pass one machine's folder"
            )
        if machines:
            direct = _numbered(machines[0])
    return sorted(direct, key=lambda p: (int(HISTORY_FILE.match(p.name).group(1)), p.name))


def _numbered(folder: Path) -> list[Path]:
    """The folder's ``NNNN_*.json`` files, unordered."""
    return [p for p in folder.glob("*.json") if HISTORY_FILE.match(p.name)]


def write_file(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a pytest-benchmark JSON file whole (temp file, then rename: never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(payload, indent=4, allow_nan=False))
