"""Paired re-measurement: two models (or two HTTP endpoints) timed against each other in paired
cells, and two runs' matched cells re-measured from their artifacts (``ab RUN RUN``,
``compare --rerun``).

A time figure recorded in one run and one recorded minutes later in another mostly measure how
fast the machine was at each moment. What these functions compare instead are the two runs'
*artifacts*, loaded together in one worker now and called query by query in a shuffled order
(``accelbench.benchmarks.paired``), so the verdict is about the models. Several cells of one
artifact pair (single-stream and offline, say) on the same profile, threads, runtime and inputs
time the same calls: they share one measurement.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from accelbench.errors import UsageError
from accelbench.records import find_artifact

if TYPE_CHECKING:
    from accelbench.runner.suite import Cell
    from accelbench.runtimes.remote import EndpointInfo, RemoteRuntime

SYNTHETIC = "synthetic"


class Source(Protocol):
    """One side of a re-measurement as the plan reads it (`accelbench.report.compare.Source`):
    its kind ("run", "baseline" or "pytest-benchmark"), path, artifact root and records as
    dicts by cell_id."""

    kind: str
    path: str
    root: str

    @property
    def cells(self) -> dict[str, dict[str, Any]]: ...


def paired_cells(
    base: Path,
    new: Path,
    *,
    profiles: list[str],
    threads: list[int] | None,
    runtime: str | None,
    xnnpack: bool,
    timeout_s: float,
    seed: int,
    pairs: int,
    rounds: int,
    base_inputs: str | None = None,
    new_inputs: str | None = None,
    sandbox: bool = True,
    trust_model: bool = False,
) -> list[Cell]:
    """One paired cell per (profile, threads): BASE as the cell's model, NEW in its settings.

    A profile that does not run here (projected, remote) is a UsageError: pairing needs both
    models really executed on this machine.
    """
    from accelbench.hardware_profiles import execution_mode, load_profile
    from accelbench.runner.suite import expand, suite_from_mapping

    for name in profiles:
        profile = load_profile(name)
        execution = execution_mode(profile)
        if execution not in ("local", "emulated"):
            raise UsageError(
                f"profile {profile.name} runs {execution}, and paired timing needs both models "
                "really executed here; use host or an emulated profile (accelbench profiles list)"
            )
    base, new = base.resolve(), new.resolve()
    suite = suite_from_mapping(
        {
            "name": f"ab {base.name} {new.name}",
            "models": [{"path": str(base)}],
            "profiles": profiles,
            "threads": threads,
            "runtime": runtime,
            "xnnpack": xnnpack,
            "timeout_s": timeout_s,
            "seed": seed,
            "sandbox": sandbox,
            "trust_model": trust_model,
        },
        "command line",
    )
    cells = expand(suite)
    resolved = {
        side: str(Path(path).resolve()) if path else None
        for side, path in (("base", base_inputs), ("new", new_inputs))
    }
    for cell in cells:
        cell.model = f"{base.stem}_vs_{new.stem}"
        cell.scenario = "paired"
        cell.preset = "paired"
        cell.inputs_path = resolved["base"]
        cell.settings = {
            "ab": {
                "new_path": str(new),
                "base_inputs": resolved["base"],
                "new_inputs": resolved["new"],
                "pairs": pairs,
                "rounds": rounds,
            }
        }
    return cells


def measure(
    cell: Cell, run_dir: Path, environment: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """Run one paired cell in its worker and return its record, with the verdict against
    `threshold` under ``paired.verdict`` (a failed worker: status failed, no verdict)."""
    from accelbench.runner.sweep import run_one

    ab = cell.settings["ab"]
    what = f"{cell.model} {cell.optimization}, " if ab.get("cells") else ""
    print(
        f"ab: {what}{cell.profile} ({cell.execution}), {cell.threads} thread(s): "
        f"{ab['rounds']} rounds x {ab['pairs']} pairs...",
        file=sys.stderr,
    )
    started = time.time()
    (record,) = run_one(cell, run_dir, run_dir.name, environment)
    record["wall_s"] = time.time() - started
    return _with_verdict(record, threshold)


def _with_verdict(record: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The record with its raw pairs moved to ``paired`` and, for a comparison that finished,
    the verdict against `threshold` under ``paired.verdict``."""
    from accelbench.benchmarks.paired import round_range, verdict

    record["paired"] = (record["settings"] or {}).pop("paired", None)
    record["settings"]["threshold"] = threshold
    if record["status"] == "ok" and record["paired"]:
        paired = record["paired"]
        paired["verdict"] = verdict(
            paired["ratio"], paired["ci_low"], paired["ci_high"], threshold, round_range(paired)
        )
    return record


def endpoint_cell(
    base: EndpointInfo,
    new: EndpointInfo,
    *,
    inputs: str | None,
    seed: int,
    pairs: int,
    rounds: int,
    timeout_s: float,
    threads: int,
) -> Cell:
    """The paired cell of two HTTP endpoints: profile and execution ``remote``, the URLs and
    model names (never an API key) in its settings; ``threads`` as the servers report them."""
    from accelbench.runner.suite import Cell

    def side(endpoint: EndpointInfo) -> dict[str, Any]:
        return {"url": endpoint.url, "model": endpoint.model, "version": endpoint.version}

    return Cell(
        model=f"{base.model}_vs_{new.model}",
        model_path=base.predict_url,
        optimization="none",
        profile="remote",
        profile_data={"name": "remote", "kind": "remote"},
        execution="remote",
        threads=threads,
        scenario="paired",
        preset="paired",
        runtime="remote",
        xnnpack=False,
        inputs_path=str(Path(inputs).resolve()) if inputs else None,
        seed=seed,
        timeout_s=timeout_s,
        settings={"ab": {"base": side(base), "new": side(new), "pairs": pairs, "rounds": rounds}},
    )


def measure_endpoints(
    cell: Cell,
    endpoints: list[RemoteRuntime],
    samples: list[Any],
    run_dir: Path,
    environment: dict[str, Any],
    threshold: float,
) -> dict[str, Any]:
    """Time two endpoints (base, new) against each other in this process, as ``load`` loads
    one, and return the cell's record with its verdict; a request that failed, or a comparison
    past the cell's timeout, fails the record with the reason.

    No worker and no sandbox: no model is loaded here, only requests are sent; the servers that
    run the models are the systems under test (``accelbench serve`` sandboxes its own).
    """
    from accelbench.benchmarks.paired import run_endpoints
    from accelbench.runner.sweep import make_record

    ab = cell.settings["ab"]
    print(
        f"ab: {ab['base']['url']} {ab['base']['model']} vs {ab['new']['url']} "
        f"{ab['new']['model']}: {ab['rounds']} rounds x {ab['pairs']} pairs...",
        file=sys.stderr,
    )
    started = time.time()
    try:
        result = run_endpoints(
            endpoints,
            samples,
            pairs=ab["pairs"],
            rounds=ab["rounds"],
            seed=cell.seed,
            timeout_s=cell.timeout_s,
        )
    except TimeoutError as err:
        result = {"status": "failed", "error": str(err)}
    except (RuntimeError, OSError) as err:
        result = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    record = make_record(
        cell, run_dir.name, environment, result, time.time() - started, run_dir / "records.jsonl"
    )
    record["log"] = None  # no worker ran, so there is no log
    return _with_verdict(record, threshold)


@dataclass
class Measurement:
    """One paired measurement of two runs' artifacts, and the matched cells it stands for."""

    model: str
    optimization: str
    base_path: Path
    new_path: Path
    profile: str
    execution: str
    threads: int
    runtime: str | None
    xnnpack: bool
    base_inputs: str | None
    new_inputs: str | None
    cells: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None


@dataclass
class RerunPlan:
    """What a re-measurement of two runs will time, and the matched cells it cannot."""

    base: Source
    new: Source
    measurements: list[Measurement]
    skipped: list[dict[str, str]]  # {"cell_id", "reason"}

    def time_verdicts(self) -> dict[str, dict[str, Any]]:
        """Per matched LoadGen cell, what ``compare_runs(time_verdicts=...)`` reads: the paired
        ratio, interval, p50s and verdict of its measurement, or the reason it has none."""
        out: dict[str, dict[str, Any]] = {
            s["cell_id"]: {"reason": s["reason"]} for s in self.skipped
        }
        for m in self.measurements:
            for cell_id in m.cells:
                out[cell_id] = _verdict_entry(m.record)
        return out

    def failed(self) -> list[Measurement]:
        """The measurements whose worker did not return a comparison."""
        return [m for m in self.measurements if _verdict_entry(m.record).get("reason")]


def plan_rerun(
    base: Source, new: Source, matched_cells: Callable[[Source, Source], list[str]]
) -> RerunPlan:
    """Plan one paired measurement per distinct (base artifact, new artifact, profile, threads,
    runtime, XNNPACK, inputs) among the LoadGen cells of ``matched_cells(base, new)``: the cells
    that compare matches (same cell_id, same execution; the CLI passes report.compare's).

    A matched cell is skipped, with its reason, when either side did not finish ok, was not
    timed on this kind of machine (projected, remote), or its artifact is gone or no longer has
    the recorded sha256. Nothing measurable at all is a UsageError.
    """
    from accelbench.benchmarks.scenarios import SCENARIOS

    if "pytest-benchmark" in (base.kind, new.kind):
        raise UsageError(
            "a pytest-benchmark file keeps no model artifacts to re-measure; give two run "
            "folders or baselines"
        )
    common = matched_cells(base, new)
    measurements: dict[tuple[Any, ...], Measurement] = {}
    skipped: list[dict[str, str]] = []
    latency = {name for name, scenario in SCENARIOS.items() if scenario.latency}
    timed = [c for c in common if base.cells[c].get("scenario") in latency]
    if not timed:
        raise UsageError(
            f"{base.path} and {new.path} have no LoadGen cells in common, so there is no time "
            "to re-measure; compare them without --rerun"
        )
    for cell_id in timed:
        records = {"base": base.cells[cell_id], "new": new.cells[cell_id]}
        reason = _not_timed(records)
        paths: dict[str, Path] = {}
        for side, source in (("base", base), ("new", new)):
            if reason:
                break
            found, why = find_artifact(records[side].get("artifact"), source.root)
            if found is None:
                reason = f"{side}: {why}"
            else:
                paths[side] = found
                reason = _refused(found, side)
        profile = records["base"].get("profile")
        if not reason:
            reason = _profile_problem(str(profile), records["base"].get("execution"))
        if reason:
            skipped.append({"cell_id": cell_id, "reason": reason})
            continue
        settings = {side: records[side].get("settings") or {} for side in records}
        inputs = {side: _inputs(settings[side]) for side in records}
        runtime = records["base"].get("runtime")
        xnnpack = bool(settings["base"].get("xnnpack", True))
        key = (
            records["base"]["artifact"]["sha256"],
            records["new"]["artifact"]["sha256"],
            profile,
            records["base"].get("threads"),
            runtime,
            xnnpack,
            inputs["base"],
            inputs["new"],
        )
        if key not in measurements:
            measurements[key] = Measurement(
                str(records["base"].get("model")),
                str(records["base"].get("optimization")),
                paths["base"],
                paths["new"],
                str(profile),
                str(records["base"]["execution"]),
                int(records["base"]["threads"]),
                runtime,
                xnnpack,
                inputs["base"],
                inputs["new"],
            )
        measurements[key].cells.append(cell_id)
    if not measurements:
        reasons = "; ".join(f"{s['cell_id']}: {s['reason']}" for s in skipped[:3])
        raise UsageError(
            f"none of the {len(timed)} matched LoadGen cells can be re-measured ({reasons}"
            f"{'; …' if len(skipped) > 3 else ''}); keep the runs' artifacts (a baseline saved "
            "with its artifacts) or compare without --rerun"
        )
    return RerunPlan(base, new, list(measurements.values()), skipped)


def plan_cells(
    plan: RerunPlan, *, timeout_s: float, seed: int, pairs: int, rounds: int, sandbox: bool = True
) -> list[Cell]:
    """The paired cell of each planned measurement, in the plan's order, named after the model
    and optimization of the cells it stands for."""
    cells: list[Cell] = []
    for m in plan.measurements:
        (cell,) = paired_cells(
            m.base_path,
            m.new_path,
            profiles=[m.profile],
            threads=[m.threads],
            runtime=m.runtime,
            xnnpack=m.xnnpack,
            timeout_s=timeout_s,
            seed=seed,
            pairs=pairs,
            rounds=rounds,
            base_inputs=m.base_inputs,
            new_inputs=m.new_inputs,
            sandbox=sandbox,
        )
        cell.model, cell.optimization = m.model, m.optimization
        taken = {c.cell_id for c in cells}
        while cell.cell_id in taken:  # the same model paired twice (other inputs): a new name
            cell.model += "_"
        cell.settings["ab"]["cells"] = list(m.cells)
        cells.append(cell)
    return cells


def _not_timed(records: dict[str, dict[str, Any]]) -> str:
    for side, record in records.items():
        if record.get("status") != "ok":
            return f"{side}: the cell {record.get('status')} ({record.get('error')})"
    execution = records["base"].get("execution")
    if execution not in ("local", "emulated"):
        return f"{execution}: the cell's figures were not timed on a machine like this one"
    return ""


def _refused(path: Path, side: str) -> str:
    from accelbench.runtimes.model_inspect import refuse_unsafe

    try:
        refuse_unsafe(path)
    except UsageError as err:
        return f"{side}: {err}"
    return ""


def _profile_problem(name: str, execution: Any) -> str:
    """Why profile `name` cannot give the cell's execution here, or ""."""
    from accelbench.hardware_profiles import execution_mode, load_profile

    try:
        profile = load_profile(name)
    except UsageError as err:
        return f"profile {name}: {err}"
    now = execution_mode(profile)
    if now != execution:
        return f"profile {name} runs {now} here, and the runs ran it {execution}"
    return ""


def _inputs(settings: dict[str, Any]) -> str | None:
    """The cell's inputs file when it recorded one that is still there; else synthetic inputs
    (None), which pairing gives both sides alike."""
    recorded = settings.get("inputs")
    if not recorded or recorded == SYNTHETIC or not Path(recorded).is_file():
        return None
    return str(recorded)


def _verdict_entry(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"reason": "not measured"}
    paired = record.get("paired") or {}
    if record.get("status") != "ok" or "verdict" not in paired:
        return {"reason": f"the re-measurement failed: {record.get('error')}"}
    metrics = record.get("metrics") or {}
    return {
        "verdict": paired["verdict"],
        "ratio": paired["ratio"],
        "ci_low": paired["ci_low"],
        "ci_high": paired["ci_high"],
        "pairs": paired["pairs"],
        "base_p50_ms": (metrics.get("base_p50_ms") or {}).get("value"),
        "new_p50_ms": (metrics.get("new_p50_ms") or {}).get("value"),
        "measurement": record.get("cell_id"),
    }
