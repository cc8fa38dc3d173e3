"""A run's plan before it starts: its cells grouped for a reader, and a wall-time estimate.

The estimate is the preset's LoadGen time per cell (its minimum duration and calibration run)
plus per-kind costs: a worker's start, a cell's overhead beyond LoadGen (runtime load, model
load, results) by scenario and execution, a reference model's training per epoch, each
optimization (conversion, fine-tuning, accuracy scoring). The costs are running averages over
this machine's finished runs (kept next to the calibration cache, updated at the end of every
run from its records' ``wall_s``); a machine without history starts from DEFAULT_COSTS.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelbench.benchmarks.scenarios import scenario_info
from accelbench.runner.suite import PAIRED_SCENARIO, Cell, PrepareJob

COSTS_FILE = "run_costs.json"
# LoadGen's own minimum duration, which the mlperf preset keeps (LoadGen 6.0's rules).
MLPERF_MIN_DURATION_S = 600.0
# A running average forgets old runs at this weight, so the costs follow a machine that changes.
AVERAGE_WINDOW = 20
# Seconds, this machine's learnt costs (below) after the default suite's runs of 2026-12-06 on a
# 2-core "Intel(R) Xeon(R) Processor" VM shared with other jobs (637 finished cells and
# preparations, the running average of each kind's last 20): what a cell costs beyond its LoadGen
# time and its worker's start, a reference model's training per epoch (with data and
# evaluation), each optimization of a model (conversion, fine-tuning, accuracy scoring; the
# fallback is their mean). Checked on two runs from a fresh cache that they were not learnt from
# (`scripts/check_plan_estimate.py`, load average 3): estimate 8.2 min, real 7.2 min both times
# (real / estimate 0.88). Server and multi-stream are taken as offline and
# single-stream; a preparation's start, the training, input-pipeline and serving cells were not
# measured here (a guess of 10 s and a minute each).
DEFAULT_COSTS: dict[str, float] = {
    "worker_start": 0.5,
    "prepare_start": 10.0,
    "prepare_cached": 0.3,
    "cell:single-stream:local": 0.3,
    "cell:single-stream:emulated": 0.3,
    "cell:single-stream:projected": 0.0,
    "cell:multi-stream:local": 0.3,
    "cell:offline:local": 1.2,
    "cell:offline:emulated": 1.3,
    "cell:server:local": 1.2,
    "cell:paired:local": 1.2,
    "cell:paired:emulated": 0.9,
    "cell:training:local": 60.0,
    "cell:input-pipeline:local": 60.0,
    "cell:serving:local": 60.0,
    "train_epoch": 1.7,
    "train_epoch:digits_cnn": 1.1,
    "train_epoch:breast_cancer_mlp": 0.4,
    "train_epoch:ic_resnet8": 3.6,
    "optimize": 6.9,
    "optimize:fp32": 4.4,
    "optimize:dynamic": 3.1,
    "optimize:float16": 2.9,
    "optimize:int8": 2.5,
    "optimize:prune50+int8": 13.0,
    "optimize:qat_int8": 14.1,
    "optimize:cluster16+int8": 8.3,
}
# A kind never seen costs what its scenario costs on this host (local); an unknown scenario
# what single-stream does.
_FALLBACK_EXECUTION = {"remote": "local", "emulated": "local"}


@dataclass
class Plan:
    """What a run will do and about how long it will take here."""

    cells: list[Cell]
    jobs: list[PrepareJob]
    cell_s: dict[str, float]  # cell_id -> estimated seconds, worker starts included
    job_s: dict[str, float]  # model -> estimated seconds of its preparation
    cached_jobs: set[str] = field(default_factory=set)
    history: int = 0  # finished cells and preparations the costs were learnt from

    @property
    def total_s(self) -> float:
        return sum(self.cell_s.values()) + sum(self.job_s.values())

    def headline(self) -> str:
        """One line: 'plan: N cells (...), J preparation jobs, about M min on this machine'."""
        kinds = Counter(_kind_word(c) for c in self.cells)
        parts = ", ".join(
            f"{kinds[k]} {k}" for k in ("measured", "emulated", "projected", "paired") if kinds[k]
        )
        jobs = f", {_count(len(self.jobs), 'preparation job')}" if self.jobs else ""
        return (
            f"plan: {_count(len(self.cells), 'cell')} ({parts}){jobs}, "
            f"about {_duration(self.total_s)} on this machine"
        )

    def describe(self) -> str:
        """The plan for --dry-run: the headline, the preparation, the cells grouped four ways."""
        lines = [self.headline()]
        source = (
            f"costs measured on this machine ({self.history} finished cells and preparations)"
            if self.history
            else "shipped costs (no run has finished on this machine yet)"
        )
        preset = sorted({c.preset for c in self.cells if c.scenario != PAIRED_SCENARIO})
        lines.append(f"estimate: preset {', '.join(preset) or '-'}; {source}")
        if self.jobs:
            seconds_all = _duration(sum(self.job_s.values()))
            lines.append(f"preparation: {_count(len(self.jobs), 'job')}, {seconds_all}")
            for job in self.jobs:
                what = (
                    "taken from the artifact cache"
                    if job.model in self.cached_jobs
                    else (
                        ("train, " if job.kind == "reference" else "")
                        + f"{len(job.optimizations)} optimizations"
                    )
                )
                lines.append(f"  {job.model}: {what}, {_duration(self.job_s[job.model])}")
        for title, key in (
            ("model", lambda c: c.model),
            ("optimization", lambda c: c.optimization),
            ("profile", lambda c: f"{c.profile} ({_kind_word(c)})"),
            ("scenario", lambda c: c.scenario),
        ):
            counts: Counter[str] = Counter()
            seconds: dict[str, float] = defaultdict(float)
            for cell in self.cells:
                counts[key(cell)] += 1
                seconds[key(cell)] += self.cell_s[cell.cell_id]
            lines.append(f"by {title}:")
            for name, n in counts.items():
                lines.append(f"  {name}: {_count(n, 'cell')}, {_duration(seconds[name])}")
        lines.append(f"total: {_count(len(self.cells), 'cell')}, about {_duration(self.total_s)}")
        return "\n".join(lines)


def make_plan(
    cells: list[Cell],
    jobs: list[PrepareJob],
    *,
    cached_jobs: Iterable[str] = (),
    costs: dict[str, float] | None = None,
) -> Plan:
    """Estimate ``cells`` and ``jobs`` with this machine's costs (or ``costs``)."""
    from accelbench.runner.pool import group_by_worker

    history = 0
    if costs is None:
        stored = load_costs()
        history = int(sum(v.get("n", 0) for v in stored.values()))
        costs = {**DEFAULT_COSTS, **{k: v["mean_s"] for k, v in stored.items()}}
    cached = set(cached_jobs)
    cell_s = {c.cell_id: cell_cost(c, costs) for c in cells}
    for group in group_by_worker(cells):
        cell_s[group[0].cell_id] += costs["worker_start"]
    job_s = {j.model: job_cost(j, costs, cached=j.model in cached) for j in jobs}
    return Plan(cells, jobs, cell_s, job_s, cached, history)


def plan_suite(suite: Any, *, cache: bool = True) -> Plan:
    """The plan of a new run of ``suite`` (what `accelbench run --dry-run` prints)."""
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.runner.suite import expand, prepare_jobs

    cells, jobs = expand(suite), prepare_jobs(suite)
    cached = cached_preparations(jobs, environment_fingerprint()) if cache else set()
    return make_plan(cells, jobs, cached_jobs=cached)


def preset_seconds(cell: Cell) -> float:
    """What the preset makes LoadGen take for the cell: its minimum duration and the run that
    measures the runtime's speed first; 0 for a cell LoadGen does not run."""
    if cell.execution == "projected" or scenario_info(cell.scenario).kind != "loadgen":
        return 0.0
    from accelbench.benchmarks.presets import get_preset

    preset = get_preset(cell.preset, cell.scenario)
    duration = (
        preset.min_duration_ms / 1000
        if preset.min_duration_ms is not None
        else MLPERF_MIN_DURATION_S
    )
    return duration + preset.calibration_ms / 1000


def cell_kind(scenario: str, execution: str) -> str:
    return f"cell:{scenario}:{execution}"


def cell_cost(cell: Cell, costs: dict[str, float]) -> float:
    """A cell's estimated seconds, its worker's start left out."""
    kind = cell_kind(cell.scenario, cell.execution)
    if kind not in costs:
        execution = _FALLBACK_EXECUTION.get(cell.execution, cell.execution)
        kind = cell_kind(cell.scenario, execution)
    overhead = costs.get(kind, costs["cell:single-stream:local"])
    return overhead + preset_seconds(cell)


def job_cost(job: PrepareJob, costs: dict[str, float], *, cached: bool = False) -> float:
    """A preparation's estimated seconds: a worker with the frameworks, the reference model's
    training (its epochs), each optimization; or restoring the artifacts from the cache."""
    if cached:
        return costs["prepare_cached"]
    seconds = costs["prepare_start"]
    if job.kind == "reference":
        seconds += _epochs(job) * costs.get(f"train_epoch:{job.model}", costs["train_epoch"])
    for name in job.optimizations:
        seconds += costs.get(f"optimize:{name}", costs["optimize"])
    return seconds


def _epochs(job: PrepareJob) -> int:
    if job.epochs:
        return job.epochs
    try:
        from accelbench.models import get_spec

        return get_spec(job.model).epochs
    except Exception:  # an unknown name fails later with its own message; estimate one epoch
        return 1


def cached_preparations(jobs: list[PrepareJob], environment: dict[str, Any]) -> set[str]:
    """The models whose preparation the artifact cache holds (restored, not trained again)."""
    from accelbench.runner import artifact_cache

    cached = set()
    for job in jobs:
        digest = artifact_cache.key_digest(artifact_cache.cache_key(job, environment))
        if (artifact_cache.cache_root() / digest).is_dir():
            cached.add(job.model)
    return cached


# --- learning the costs from finished runs ----------------------------------------------------


def observed_costs(
    records: list[dict[str, Any]], costs: dict[str, float]
) -> list[tuple[str, float]]:
    """(kind, seconds) observations in a run's records, read against ``costs`` where one figure
    holds two costs (a cell's wall time includes its worker's start when it was the first)."""
    seen: list[tuple[str, float]] = []
    optimize_s: dict[str, float] = defaultdict(float)
    for r in records:
        fresh = not (r.get("settings") or {}).get("prepared_from_cache")
        if (
            r.get("scenario") == "accuracy"
            and r.get("status") == "ok"
            and r.get("wall_s")
            and fresh
        ):
            seen.append((f"optimize:{r['optimization']}", float(r["wall_s"])))
            optimize_s[r["model"]] += float(r["wall_s"])
    done_cells = set()
    for r in records:
        wall, settings = r.get("wall_s"), r.get("settings") or {}
        if not wall:
            continue
        if "fine_tune_epochs" in settings:  # a preparation's record
            epochs = ((r.get("metrics") or {}).get("epochs") or {}).get("value")
            if r.get("scenario") == "training" and r.get("status") == "ok" and epochs:
                if settings.get("prepared_from_cache"):
                    seen.append(("prepare_cached", float(wall)))
                    continue
                train = float(wall) - optimize_s[r["model"]] - costs["prepare_start"]
                seen.append((f"train_epoch:{r['model']}", max(train, 0.0) / epochs))
            continue
        cell_id = r.get("parent_cell_id") or r.get("cell_id")
        if cell_id in done_cells or r.get("status") not in ("ok", "invalid", "skipped"):
            continue
        if r.get("node"):  # spread to a cluster node: its time and Ray's, not this machine's
            continue
        done_cells.add(cell_id)
        kind = cell_kind(r["scenario"], r["execution"])
        fake = _record_cell(r)
        beyond = float(wall) - (preset_seconds(fake) if fake else 0.0)
        worker = r.get("worker")  # None: a record of a run that gave every cell its own worker
        first = worker is None or worker.get("earlier_cells") == 0
        if worker is not None and first and kind in costs:
            # Its worker started with it: what is left beyond the kind's cost is that start.
            seen.append(("worker_start", max(beyond - costs[kind], 0.0)))
        seen.append((kind, max(beyond - (costs["worker_start"] if first else 0.0), 0.0)))
    return seen


def _record_cell(r: dict[str, Any]) -> Cell | None:
    """Enough of a record's cell for preset_seconds."""
    preset = (r.get("settings") or {}).get("preset")
    if not preset:
        return None
    try:
        return Cell(
            model=r["model"],
            model_path="",
            optimization=r["optimization"],
            profile=r["profile"],
            profile_data={},
            execution=r["execution"],
            threads=r.get("threads") or 1,
            scenario=r["scenario"],
            preset=preset,
            runtime=None,
            xnnpack=True,
            inputs_path=None,
            seed=0,
            timeout_s=1.0,
        )
    except KeyError:
        return None


def learn(records: list[dict[str, Any]]) -> None:
    """Fold a finished run's records into this machine's running averages (best effort: a
    cache that cannot be written leaves the estimate as it was)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        stored = load_costs()
        costs = {**DEFAULT_COSTS, **{k: v["mean_s"] for k, v in stored.items()}}
        for kind, seconds in observed_costs(records, costs):
            entry = stored.setdefault(kind, {"mean_s": DEFAULT_COSTS.get(kind, seconds), "n": 0})
            entry["n"] += 1
            # A shipped cost counts as one observation, so that one odd run does not replace it.
            weight = entry["n"] + (kind in DEFAULT_COSTS)
            entry["mean_s"] += (seconds - entry["mean_s"]) / min(weight, AVERAGE_WINDOW)
        _save_costs(stored)


def costs_path() -> Path:
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir() / COSTS_FILE


def load_costs() -> dict[str, dict[str, float]]:
    """This machine's learnt costs: kind -> {mean_s, n}; empty when none are kept."""
    try:
        data = json.loads(costs_path().read_text(encoding="utf-8"))
        entry = data.get(_host_id(), {})
        return {k: v for k, v in entry.items() if isinstance(v, dict) and "mean_s" in v}
    except (OSError, ValueError, AttributeError):
        return {}


def _save_costs(stored: dict[str, dict[str, float]]) -> None:
    path = costs_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[_host_id()] = stored
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _host_id() -> str:
    from accelbench.hardware_profiles.host import host_fingerprint_id

    return host_fingerprint_id()


def _kind_word(cell: Cell) -> str:
    if cell.scenario == PAIRED_SCENARIO:
        return "paired"
    return {"local": "measured", "remote": "measured"}.get(cell.execution, cell.execution)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
