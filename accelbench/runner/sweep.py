"""The sweep: cells in isolated workers under timeouts; records appended; resume; clean stops."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from accelbench.benchmarks.scenarios import scenario_info
from accelbench.errors import UsageError
from accelbench.processes import spawn_group, stop_group
from accelbench.records import (
    RECORDS_FILE,
    SCHEMA_VERSION,
    Record,
    append_record,
    mend_torn_tail,
    metric,
    read_records,
    write_atomic,
)
from accelbench.runner import plan as run_plan
from accelbench.runner.devices.ray_cluster import cluster_cells, is_ray_cell
from accelbench.runner.pool import CellFiles, CellWorkers, Outcome, group_by_worker
from accelbench.runner.sandbox import Sandbox, exit_status, named_paths, read_untrusted
from accelbench.runner.sandbox import choose as choose_sandbox
from accelbench.runner.suite import (
    PAIRED_SCENARIO,
    Cell,
    PrepareJob,
    Suite,
    attach_paired_artifacts,
    expand,
    prepare_jobs,
)

SUITE_FILE = "suite.json"
LOCK_FILE = ".lock"
PREPARE_SCENARIOS = ("training", "accuracy")


def new_run_dir(root: Path = Path("results")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{secrets.token_hex(2)}"


def prepare_run_dir(run_dir: Path, suite: Suite, resume: bool) -> None:
    """Create the run folder, or check that a resumed one is a run folder; never overwrite.

    Called with the folder's lock held (see run_lock), so that two runs given one new --out
    cannot both write their suite into it.
    """
    suite_path = run_dir / SUITE_FILE
    if resume:
        if not suite_path.is_file():
            raise UsageError(
                f"{run_dir} is not an accelbench run folder (no {SUITE_FILE}); "
                "pass a folder that a previous bench or run wrote"
            )
        return
    if suite_path.exists() or (run_dir / RECORDS_FILE).exists():
        raise UsageError(
            f"run folder {run_dir} already exists and is not empty; choose another --out, "
            f"or continue it with --resume {run_dir}"
        )
    write_atomic(suite_path, json.dumps(suite.model_dump(mode="json"), indent=2))


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(
            f"run folder {run_dir} already exists and is not empty; choose another --out, "
            f"or continue it with --resume {run_dir}"
        )


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while writing into it.

    Two processes appending to one records file would interleave and duplicate cells. The lock
    file names its holder (pid, host, command, since when) for the UsageError a second process
    gets. The kernel drops the lock when its holder dies, so a killed run never leaves its
    folder locked; workers do not inherit it (Popen closes other descriptors).
    """
    import fcntl
    import shlex
    import socket

    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(_lock_holder_message(run_dir, fd)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": shlex.join(sys.argv),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # still locked here: no one reads a stale holder
    finally:
        os.close(fd)  # releases the lock


def _lock_holder_message(run_dir: Path, fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8"))
        who = (
            f"pid {holder['pid']} on {holder['host']}, running '{holder['command']}', "
            f"since {holder['since']}"
        )
    except (ValueError, KeyError, TypeError):  # the holder has not written its name yet
        who = "another process"
    return (
        f"run folder {run_dir} is in use by {who}; wait for it to finish or stop it, then try again"
    )


def load_run_suite(run_dir: Path) -> Suite:
    from accelbench.runner.suite import suite_from_mapping

    path = run_dir / SUITE_FILE
    if not path.is_file():
        raise UsageError(
            f"{run_dir} is not an accelbench run folder (no {SUITE_FILE}); "
            "pass a folder that a previous bench or run wrote"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise UsageError(
            f"{path} is corrupt ({exc}); restore it from a copy of the run folder, or start "
            "a new run with a new --out"
        ) from None
    return suite_from_mapping(data, str(path))


def run_suite(
    suite: Suite,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    cache: bool = True,
    write_outputs: Callable[[Path], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of the suite not yet recorded in run_dir; return all the run's records.

    ``cache``: take prepared artifacts from the artifact cache where it has them, and keep new
    ones there (runner/artifact_cache.py); False prepares every model afresh.

    ``write_outputs(run_dir)`` writes the files derived from records.jsonl once the sweep ends
    (the CLI passes `accelbench.report.run_outputs.write_run_outputs`: results.parquet, summary.md
    and the report); None writes only records.jsonl.

    Ctrl-C stops the cell in flight (its worker is killed, no record is written for it) and
    re-raises KeyboardInterrupt after the derived files are written from the finished records.
    """
    cells = expand(suite)
    jobs = prepare_jobs(suite)
    if not resume:
        _check_new_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        prepare_run_dir(run_dir, suite, resume)
        return _sweep(cells, jobs, run_dir, progress, cache, write_outputs)


def _sweep(
    cells: list[Cell],
    jobs: list[PrepareJob],
    run_dir: Path,
    progress: bool,
    cache: bool,
    write_outputs: Callable[[Path], None] | None,
) -> list[dict[str, Any]]:
    records_path = run_dir / RECORDS_FILE
    if records_path.is_file():
        # A killed writer's torn last line goes now, before anything is appended after it.
        with open(records_path, "a+b") as fh:
            torn = mend_torn_tail(fh, records_path)
        if torn:
            print(f"{records_path} ended in a torn line: moved to {torn}", file=sys.stderr)
    try:
        records = read_records(run_dir)  # kept in memory and extended: the file is read once
    except ValueError as exc:
        raise UsageError(
            f"{exc}; delete that line to re-run its cell with --resume, or start a new run "
            "with a new --out"
        ) from None
    recorded = {r["cell_id"] for r in records}
    done = finished_cells(records)
    todo = [c for c in cells if c.cell_id not in done]
    run_id = run_dir.name
    from accelbench.hardware_profiles import environment_fingerprint

    environment = environment_fingerprint()
    restored = {j.model: _restorable_records(run_dir, j) for j in jobs}
    jobs = [j for j in jobs if restored[j.model] is None]
    cached = run_plan.cached_preparations(jobs, environment) if cache else set()
    plan = run_plan.make_plan(todo, jobs, cached_jobs=cached)
    # First, so that a run of hours says so before it starts (accelbench run --dry-run: details).
    print(plan.headline(), file=sys.stderr, flush=True)
    bar = _Progress(plan, enabled=progress)
    fresh_from: int | None = None

    def emit(record: dict[str, Any]) -> None:
        if record["cell_id"] in recorded:
            return  # a re-run cell's or preparation's record that was kept: never twice
        # Checked whole: a record that lacks a field every run's record has is a bug.
        append_record(run_dir, Record.parse(record, f"{record['cell_id']}'s record", run=True))
        records.append(record)
        recorded.add(record["cell_id"])
        bar.advance(record)

    try:
        for kept in restored.values():
            for record in kept or []:
                emit(record)
        fresh_from = len(records)
        for job in jobs:
            bar.describe(f"{job.model}: train and optimize")
            run_prepare(job, run_dir, run_id, environment, emit, cache=cache)
            bar.advance_job(job.model)
        # The cluster's cells first, many at once; then this machine's, whose measurements the
        # cluster's would disturb where a node shares the machine (the head often does).
        on_cluster = cluster_cells(todo)
        if on_cluster:
            records_of = run_cells(
                on_cluster, run_dir, run_id, environment, bar.start, cluster=True
            )
            for record in records_of:
                emit(record)
        sent = {id(c) for c in on_cluster}
        here = [c for c in todo if id(c) not in sent]
        # Cells that share a worker run one after another (runner/pool.py).
        for group in group_by_worker(here):
            for record in run_cells(group, run_dir, run_id, environment, bar.start):
                emit(record)
    finally:
        bar.stop()
        if fresh_from is not None:
            run_plan.learn(records[fresh_from:])  # the next plan's costs, from this run's
        if write_outputs is not None and records_path.exists():
            write_outputs(run_dir)
    return records


def finished_cells(records: list[dict[str, Any]]) -> set[str]:
    """The cells that need no re-run: a one-record cell once its record is there; a cell of
    several configurations once every configuration its worker measured is recorded."""
    recorded = {r["cell_id"] for r in records}
    done = set()
    for r in records:
        parent = r.get("parent_cell_id")
        if not parent:
            done.add(r["cell_id"])
            continue
        # Records written before configuration_keys existed: one of them marks the cell done.
        keys = r.get("configuration_keys")
        if keys is None or all(f"{parent}.{key}" in recorded for key in keys):
            done.add(parent)
    return done


def _spawn(
    module: str,
    args: list[Path],
    timeout_s: float,
    log_file: Path,
    box: Sandbox | None = None,
    read: Sequence[str] = (),
    write: Sequence[Path] = (),
) -> tuple[int | None, bool]:
    """Run ``python -m module ARGS`` in its own session, in ``box`` (reading ``read``, writing
    only ``write``); returns (exit code, timed out)."""
    box = box or Sandbox("off")
    argv = [sys.executable, "-m", module, *map(str, args)]
    command, env = box.command(argv, read=[*read, *map(str, args)], write=write)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(log_file, "wb") as log:
        # Ctrl-C reaches the sweep only; the sweep stops the worker.
        proc = spawn_group(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            return exit_status(proc.wait(timeout=timeout_s), box), False
        except subprocess.TimeoutExpired:
            return exit_status(stop_group(proc), box), True
        except BaseException:
            stop_group(proc)
            raise


def run_one(
    cell: Cell, run_dir: Path, run_id: str, environment: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run one cell in a worker of its own and turn whatever happened into its records."""
    return list(run_cells([cell], run_dir, run_id, environment))


def run_cells(
    cells: Sequence[Cell],
    run_dir: Path,
    run_id: str,
    environment: dict[str, Any],
    on_start: Callable[[Cell], None] | None = None,
    *,
    cluster: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run cells of one worker environment (a group of pool.group_by_worker) one after another
    in a shared worker, and yield each cell's records as soon as the cell ends. Cells of ray
    profiles, and every cell with ``cluster`` (those ray_cluster.cluster_cells chose), run on
    the Ray cluster instead, many at once, each yielded as it ends.

    A cell is one record, except when its worker measured several configurations (an input
    pipeline's formats and settings, a server's batching modes): then each is a record of its
    own, with ``cell_id`` = the cell's id + '.' + the configuration's key, and ``parent_cell_id``.
    """
    cells_dir = run_dir / "cells"
    cells_dir.mkdir(exist_ok=True)
    ready: list[tuple[Cell, CellFiles, dict[str, Any] | None]] = []
    for cell in cells:
        log_file = cells_dir / f"{cell.cell_id}.log"
        quality, unrun = _attach_artifact(cell, run_dir)
        if unrun:
            status, reason = unrun
            yield _unrun_record(cell, run_id, environment, status, reason, log_file)
            continue
        # The worker's own folder, the one place it may write (its LoadGen logs, its result).
        work_dir = cells_dir / f"{cell.cell_id}-loadgen"
        work_dir.mkdir(exist_ok=True)
        files = CellFiles(
            cells_dir / f"{cell.cell_id}.cell.json", work_dir / "result.json", work_dir, log_file
        )
        files.cell_file.write_text(json.dumps(cell.to_dict()), encoding="utf-8")
        files.result_file.unlink(missing_ok=True)
        ready.append((cell, files, quality))
    on_cluster = [r for r in ready if cluster or is_ray_cell(r[0].profile_data, r[0].execution)]
    if on_cluster:
        yield from _cluster_records(on_cluster, run_id, environment, on_start)
        ready = [r for r in ready if r not in on_cluster]
    if not ready:
        return
    box = choose_sandbox(ready[0][0].sandbox)
    read = sorted({p for c, f, _ in ready for p in (*named_paths(c.to_dict()), str(f.cell_file))})
    # A remote cell's worker reaches its device: the network, and what ssh reads here.
    network = any(c.execution == "remote" for c, _, _ in ready)
    if network:
        read = sorted({*read, *_ssh_paths(ready[0][0])})
    writes = [f.work_dir for _, f, _ in ready]
    with CellWorkers(box, read, writes, cells_dir, network=network) as workers:
        for cell, files, quality in ready:
            if on_start:
                on_start(cell)
            # A result left by an earlier cell's process in this folder is not this cell's.
            files.result_file.unlink(missing_ok=True)
            outcome = workers.run(files, cell.timeout_s)
            yield from _cell_records(cell, files, outcome, quality, box, run_id, environment)


def _cluster_records(
    ready: list[tuple[Cell, CellFiles, dict[str, Any] | None]],
    run_id: str,
    environment: dict[str, Any],
    on_start: Callable[[Cell], None] | None,
) -> Iterator[dict[str, Any]]:
    """Cells on the Ray cluster (runner/devices/ray_cluster.py), many at once, each cell's
    records yielded as it ends. A ray profile's worker runs on its node outside any sandbox; a
    spread cell's runs in the sandbox its node has, measured on that node: its records carry
    the node and its environment."""
    from accelbench.runner.devices.ray_cluster import ClusterJob, run_on_cluster

    made = {id(c): (files, quality) for c, files, quality in ready}
    jobs = [ClusterJob(c, files.result_file, files.log_file) for c, files, _ in ready]
    for job in jobs:
        job.result_file.unlink(missing_ok=True)
    for job in run_on_cluster(jobs, on_start):
        files, quality = made[id(job.cell)]
        outcome = Outcome(job.code, job.timed_out, job.wall_s, {"id": 0, "earlier_cells": 0})
        ray_profile = is_ray_cell(job.cell.profile_data, job.cell.execution)
        node = None if ray_profile else _node_part(files.result_file)
        if node:
            box = Sandbox(**node["sandbox"])
        elif ray_profile:
            box = choose_sandbox(False)
        else:
            box = Sandbox("none", "the cell did not run on a node")
        records = _cell_records(job.cell, files, outcome, quality, box, run_id, environment)
        for record in records:
            if node:
                record["node"], record["environment"] = node["node"], node["environment"]
        yield from records


def _node_part(result_file: Path) -> dict[str, Any] | None:
    """Where a spread cell ran, as its node's result says: the node, its environment and its
    sandbox; None for a ray profile's cell, or one that never reached a node."""
    try:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not result.get("node"):
        return None
    fields = result.get("sandbox_fields") or {}
    return {
        "node": result["node"],
        "environment": result.get("environment"),
        "sandbox": {"mode": fields.get("sandbox", "none"), "reason": fields.get("sandbox_reason")},
    }


def _ssh_paths(cell: Cell) -> list[str]:
    from accelbench.hardware_profiles import HardwareProfile
    from accelbench.runner.devices.ssh import SshDevice

    profile = HardwareProfile.model_validate(cell.profile_data)
    return [p for p in SshDevice.from_profile(profile).local_paths() if Path(p).exists()]


def _attach_artifact(
    cell: Cell, run_dir: Path
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """Point the cell at its prepared artifact(s); returns the artifact's quality (to merge into
    the record) and, for a cell that cannot run, (status, reason)."""
    quality: dict[str, Any] | None = None
    if cell.prepared_by and cell.scenario == PAIRED_SCENARIO:
        # Every artifact of the model, in one worker: each optimization gets a record of its own.
        def prepared(optimization: str) -> dict[str, Any]:
            return _prepared_artifact(run_dir, dataclasses.replace(cell, optimization=optimization))

        reason = attach_paired_artifacts(cell, prepared)
        if reason:
            return None, ("failed", reason)
    elif cell.prepared_by:
        made = _prepared_artifact(run_dir, cell)
        if made.get("status") != "ok":
            reason = f"no artifact: {cell.optimization} failed ({made.get('error')})"
            return None, ("failed", reason)
        cell.model_path = made["artifact"]["path"]
        quality = made
    if cell.on_accelerator:
        # Only JAX reaches an attached accelerator here: a .tflite would measure the CPU.
        jax_export = (quality or {}).get("jax_export") or (
            cell.model_path if cell.model_path.endswith(".jaxexport") else None
        )
        if not jax_export:
            reason = (
                f"{cell.profile} is attached, but only a JAX export (.jaxexport) runs on it "
                f"here; {cell.model} ({cell.optimization}) has none"
            )
            return quality, ("skipped", reason)
        cell.model_path = jax_export
    return quality, None


def _cell_records(
    cell: Cell,
    files: CellFiles,
    outcome: Outcome,
    quality: dict[str, Any] | None,
    box: Sandbox,
    run_id: str,
    environment: dict[str, Any],
) -> list[dict[str, Any]]:
    log_file = files.log_file
    cap = (cell.profile_data.get("emulation") or {}).get("memory_mb")
    result = _worker_result(
        files.result_file, outcome.code, outcome.timed_out, cell.timeout_s, cap, log_file
    )
    if result.get("status") == "failed":
        result["error"] = _explain_memory(result.get("error") or "", cell, log_file)
    parts = result.pop("records", None)
    records = []
    for part in parts or [{}]:
        merged = {
            **result,
            **part,
            "settings": {**(result.get("settings") or {}), **(part.get("settings") or {})},
        }
        merged["metrics"] = {**(result.get("metrics") or {}), **(part.get("metrics") or {})}
        record = make_record(cell, run_id, environment, merged, outcome.wall_s, log_file)
        record.update(box.record_fields())
        record["worker"] = outcome.worker
        if parts:
            record["cell_id"] = f"{cell.cell_id}.{part['key']}"
            record["parent_cell_id"] = cell.cell_id
            record["optimization"] = part.get("optimization", record["optimization"])
            if part.get("paired"):
                record["paired"] = part["paired"]
            # Every sibling's key: resume sees a cell cut short after some of its records.
            record["configuration_keys"] = [p["key"] for p in parts]
        if quality:
            _merge_quality(record, quality)
        records.append(record)
    return records


def _unrun_record(
    cell: Cell, run_id: str, environment: dict[str, Any], status: str, reason: str, log: Path
) -> dict[str, Any]:
    """The record of a cell that never reached a worker, with the reason in its log too."""
    log.write_text(reason + "\n", encoding="utf-8")
    return make_record(cell, run_id, environment, {"status": status, "error": reason}, 0.0, log)


def _prepared_path(run_dir: Path, model: str) -> Path:
    return run_dir / "artifacts" / model / "prepared.json"


@functools.lru_cache(maxsize=32)
def _read_prepared(path: str, _mtime_ns: int) -> dict[str, Any]:
    """prepared.json, read once per model rather than once per cell (the mtime keys a rewrite)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _prepared_artifact(run_dir: Path, cell: Cell) -> dict[str, Any]:
    path = _prepared_path(run_dir, cell.prepared_by or cell.model)
    if not path.is_file():
        return {"status": "failed", "error": "the model was not prepared"}
    prepared = _read_prepared(str(path), path.stat().st_mtime_ns)
    if prepared.get("status") != "ok":
        return {"status": "failed", "error": prepared.get("error")}
    made = prepared["artifacts"].get(cell.optimization)
    if made is None:
        return {"status": "failed", "error": "not among the prepared optimizations"}
    # The quality metric (accuracy, or auc for the autoencoder) is the model's, stored once.
    return {**made, "metric": prepared.get("metric", "accuracy")}


def quality_metrics(made: dict[str, Any], metric_name: str) -> dict[str, dict[str, Any]]:
    """An artifact's quality and size metrics, as stored in its accuracy and benchmark records."""
    stats = made.get("stats") or {}
    comparison = made.get("comparison") or {}
    out = {
        metric_name: metric(made["quality"], "fraction", "higher"),
        f"{metric_name}_delta": metric(made["quality_delta"], "fraction", "higher"),
        "model_gzip_bytes": metric(stats.get("model_gzip_bytes"), "bytes", "lower"),
        "sparsity": metric(stats.get("sparsity"), "fraction", "none"),
    }
    if comparison.get("agreement") is not None:
        out["prediction_agreement"] = metric(comparison["agreement"], "fraction", "higher")
    if comparison.get("worst_class_delta") is not None:
        out["worst_class_delta"] = metric(comparison["worst_class_delta"], "fraction", "higher")
    return out


def _quality_section(made: dict[str, Any]) -> dict[str, Any]:
    comparison = made.get("comparison") or {}
    stats = made.get("stats") or {}
    return {
        "per_class": comparison.get("per_class"),
        "flagged_classes": comparison.get("flagged_classes"),
        "worst_class_delta": comparison.get("worst_class_delta"),
        "agreement": comparison.get("agreement"),
        "flag_threshold_points": comparison.get("threshold_points", 2.0),
        "correct_bits": made.get("correct_bits"),
        "unique_weights_per_layer": stats.get("unique_weights_per_layer"),
        "sparsity_per_layer": stats.get("sparsity_per_layer"),
        "weight_dtypes": stats.get("weight_dtypes"),
        "float_ops": stats.get("float_ops"),
        "int_ops": stats.get("int_ops"),
        "steps": (made.get("artifact") or {}).get("steps"),
        "notes": (made.get("artifact") or {}).get("notes"),
    }


def _merge_quality(record: dict[str, Any], made: dict[str, Any]) -> None:
    metric_name = made.get("metric", "accuracy")
    record["metrics"].update(quality_metrics(made, metric_name))
    record["quality"] = _quality_section(made)


def run_prepare(
    job: PrepareJob,
    run_dir: Path,
    run_id: str,
    environment: dict[str, Any],
    emit: Callable[[dict[str, Any]], None],
    *,
    cache: bool = True,
) -> None:
    """Train/load one model and make its artifacts in a worker, or take them from the artifact
    cache (``cache``: look there first, and keep a new preparation there); emit its records,
    then mark it prepared (prepared.json, with those records: see _restorable_records)."""
    from accelbench.runner import artifact_cache

    out_dir = run_dir / "artifacts" / job.model
    out_dir.mkdir(parents=True, exist_ok=True)
    job_file, result_file = out_dir / "job.json", out_dir / "result.json"
    log_file = out_dir / "prepare.log"
    # Written afresh (never through a link an earlier worker may have left in its folder).
    for written in (job_file, log_file, result_file):
        written.unlink(missing_ok=True)
    key = artifact_cache.cache_key(job, environment) if cache else None
    digest = artifact_cache.key_digest(key) if key else None
    started = time.time()
    entry, unusable = artifact_cache.lookup(digest, key, out_dir) if key else (None, None)
    if unusable:
        print(
            f"accelbench: {job.model}: the artifact cache's entry {digest} is not usable "
            f"({unusable}); preparing again",
            file=sys.stderr,
        )
    if entry is not None:
        print(
            f"accelbench: {job.model}: prepared artifacts taken from the cache "
            f"(key {entry.digest[:12]}, made in run {entry.prepared_in_run}); not trained again",
            file=sys.stderr,
        )
        result, sandbox_fields = entry.result, entry.sandbox
        records = _prepare_records(
            job, result, run_id, environment, time.time() - started, log_file
        )
        for record in records:
            # A record's wall_s is this run's time: making the artifact took none of it (the
            # preparation's own times stay in the run it names, prepared_in_run).
            if record["scenario"] == "accuracy":
                record["wall_s"] = 0.0
    else:
        job_file.write_text(
            json.dumps({**job.to_dict(), "out_dir": str(out_dir)}), encoding="utf-8"
        )
        box = choose_sandbox(job.sandbox)
        code, timed_out = _spawn(
            "accelbench.runner.prepare",
            [job_file, result_file],
            job.timeout_s,
            log_file,
            box,
            read=named_paths(job.to_dict()),
            write=[out_dir],
        )
        wall_s = time.time() - started
        result = _worker_result(result_file, code, timed_out, job.timeout_s, None, log_file)
        result.setdefault("artifacts", {})
        sandbox_fields = box.record_fields()
        records = _prepare_records(job, result, run_id, environment, wall_s, log_file)
        complete = result.get("status") == "ok" and all(
            (result["artifacts"].get(name) or {}).get("status") == "ok"
            for name in job.optimizations
        )
        if key and code == 0 and complete:
            artifact_cache.store(digest, key, out_dir, result, sandbox_fields, run_id)
    for record in records:
        record.update(sandbox_fields)
        record["settings"] = {
            **record["settings"],
            "prepared_from_cache": entry is not None,
            "cache_key": digest,
        }
        if entry is not None:
            record["settings"]["prepared_in_run"] = entry.prepared_in_run
        emit(record)
    # The marker last: a crash before it re-runs the preparation, whose records are not
    # appended twice; a marker is never there without its records.
    write_atomic(_prepared_path(run_dir, job.model), json.dumps({**result, "records": records}))


def _restorable_records(run_dir: Path, job: PrepareJob) -> list[dict[str, Any]] | None:
    """A prepared model's records as its marker keeps them (the sweep appends those missing
    from records.jsonl), or None when the model must be prepared (again)."""
    path = _prepared_path(run_dir, job.model)
    if not path.is_file():
        return None
    try:
        prepared = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # a marker cut short: prepare again
        return None
    return prepared.get("records") or []


def _prepare_records(
    job: PrepareJob,
    result: dict[str, Any],
    run_id: str,
    environment: dict[str, Any],
    wall_s: float,
    log_file: Path,
) -> list[dict[str, Any]]:
    metric_name = result.get("metric", "accuracy")
    base = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "model": job.model,
        "profile": "host",
        "profile_kind": "cpu",
        "execution": "local",
        "runtime": (result.get("training") or {}).get("framework", "tensorflow"),
        "threads": os.cpu_count(),
        "environment": environment,
        "log": str(log_file),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    settings = {
        "seed": job.seed,
        "epochs": job.epochs,
        "fine_tune_epochs": job.fine_tune_epochs,
        "data": job.data or "built-in",
        **(result.get("data_settings") or {}),
    }
    records = []
    training = result.get("training")
    if job.kind == "reference":
        metrics = {}
        if training:
            metrics = {
                metric_name: metric(training["quality"], "fraction", "higher"),
                "quality_target": metric(training["target"], "fraction", "higher"),
                "epochs": metric(training["epochs"], "epochs", "none"),
                "train_wall_s": metric(training["wall_s"], "s", "lower"),
                "time_to_target_s": metric(training["time_to_target_s"], "s", "lower"),
            }
        records.append(
            {
                **base,
                "cell_id": f"{job.model}.fp32.host.training",
                "scenario": "training",
                "optimization": "fp32",
                "status": "ok" if training else "failed",
                "error": None if training else result.get("error"),
                "settings": settings,
                "metrics": metrics,
                "training": training,
                "artifact": None,
                "wall_s": wall_s,
            }
        )
    for name in job.optimizations:
        made = result["artifacts"].get(name) or {"status": "failed", "error": result.get("error")}
        ok = made.get("status") == "ok"
        record = {
            **base,
            "cell_id": f"{job.model}.{name}.host.accuracy",
            "scenario": "accuracy",
            "optimization": name,
            "status": "ok" if ok else "failed",
            "error": None if ok else made.get("error"),
            "settings": settings,
            "metrics": {},
            "artifact": None,
            "wall_s": made.get("optimize_s"),
        }
        if ok:
            from accelbench.records import artifact_info

            record["artifact"] = artifact_info(Path(made["artifact"]["path"]))
            record["metrics"] = {
                "model_bytes": metric(record["artifact"]["bytes"], "bytes", "lower"),
                **quality_metrics(made, metric_name),
            }
            record["quality"] = _quality_section(made)
        records.append(record)
    return records


def _worker_result(
    result_file: Path,
    code: int | None,
    timed_out: bool,
    timeout_s: float,
    memory_cap_mb: int | None,
    log_file: Path,
) -> dict[str, Any]:
    """What a worker wrote, or why it wrote nothing (a timeout, a signal, an early exit)."""
    if timed_out:
        return {"status": "failed", "error": f"timed out after {timeout_s:g} s"}
    if result_file.is_file():
        # Read as what it is: a file the model's process could write anything into.
        try:
            return json.loads(read_untrusted(result_file) or "")
        except ValueError:
            return {"status": "failed", "error": f"the worker's result {result_file} is unreadable"}
    return {"status": "failed", "error": _death_reason(code, memory_cap_mb, log_file)}


def _explain_memory(error: str, cell: Cell, log_file: Path) -> str:
    """Say so when an allocation failed under an emulated device's memory cap."""
    cap = (cell.profile_data.get("emulation") or {}).get("memory_mb")
    words = (
        "memoryerror",
        "memory allocation",
        "cannot allocate",
        "bad_alloc",
        "out of memory",
        "failed to map segment",
    )
    text = (error + log_file.read_text(encoding="utf-8", errors="replace")).lower()
    hit = cap and any(w in text for w in words) and "memory cap" not in error
    if cell.execution == "emulated" and hit:
        return f"out of memory under {cell.profile}'s {cap} MB memory cap: {error}"
    return error


def _death_reason(code: int | None, cap: int | None, log_file: Path) -> str:
    if code is not None and code < 0:
        sig = signal.Signals(-code).name
        if sig == "SIGKILL":
            why = f" (memory cap {cap} MB)" if cap else ""
            return f"worker killed by SIGKILL, most likely out of memory{why}"
        if sig == "SIGSEGV":
            return "worker crashed with SIGSEGV (segmentation fault) inside the interpreter"
        return f"worker died from signal {sig}"
    tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = tail[-1] if tail else "no output"
    return f"worker exited with status {code}: {last}"


def _inputs_source(cell: Cell) -> str:
    """What a cell fed its model, as ``settings.inputs`` records it: the inputs file; for a
    training or input-pipeline cell the data it read (the user's file, or the reference model's
    built-in data); otherwise inputs made from the model's signature ("synthetic")."""
    if cell.inputs_path:
        return cell.inputs_path
    if scenario_info(cell.scenario).per_model:
        return cell.settings.get("data") or "built-in"
    return "synthetic"


def make_record(
    cell: Cell,
    run_id: str,
    environment: dict[str, Any],
    result: dict[str, Any],
    wall_s: float,
    log_file: Path,
) -> dict[str, Any]:
    metrics = dict(result.get("metrics") or {})
    rss = result.get("peak_rss_mb")
    if (
        rss
        and cell.execution not in ("projected", "remote")
        and result.get("status") in ("ok", "invalid")
    ):
        metrics["peak_rss_mb"] = metric(rss, "MB", "lower")
    loadgen = result.get("loadgen") or {}
    comparability = None
    if loadgen:
        from accelbench.benchmarks.presets import comparable_to_mlperf, mlperf_comparability

        qsl = (loadgen.get("settings") or {}).get("qsl") or {}
        comparability = mlperf_comparability(
            bool(loadgen.get("official_loadgen_rules")),
            qsl.get("total_sample_count"),
            cell.inputs_path,
        )
    settings = {
        "preset": cell.preset,
        "threads": cell.threads,
        "xnnpack": cell.xnnpack,
        "inputs": _inputs_source(cell),
        "seed": cell.seed,
        "timeout_s": cell.timeout_s,
        "batch_size": cell.batch_size,  # as asked; settings.loadgen.sut.batch_size: as run
        "loadgen": loadgen.get("settings"),
        "comparable_to_mlperf": comparable_to_mlperf(comparability) if comparability else None,
        "mlperf_comparability": comparability,
        **cell.settings,
        **(result.get("settings") or {}),
    }
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "status": result.get("status", "failed"),
        "error": result.get("error"),
        "model": cell.model,
        "optimization": cell.optimization,
        "profile": cell.profile,
        "profile_kind": cell.profile_data.get("kind"),
        "profile_data": cell.profile_data,
        "execution": cell.execution,
        "scenario": cell.scenario,
        "runtime": (result.get("runtime") or {}).get("runtime") or cell.runtime or "auto",
        "runtime_info": result.get("runtime"),
        "threads": cell.threads,
        "settings": settings,
        "environment": environment,
        "artifact": result.get("artifact") or {"path": cell.model_path},
        "metrics": metrics,
        "validity": {
            "result": loadgen.get("result_validity"),
            "criteria": loadgen.get("criteria"),
            "early_stopping": loadgen.get("early_stopping"),
        },
        "emulation": result.get("emulation"),
        "projection": result.get("projection"),
        "remote": result.get("remote"),
        "graph": _graph_summary(result.get("graph")),
        "raw_latencies_ms": result.get("raw_latencies_ms") or [],
        "canary": result.get("canary"),
        "wall_s": wall_s,
        "log": str(log_file),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    cost = _cost(record)
    if cost is not None:
        record["cost"] = cost
    return record


def _cost(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's cost part (pricing.cost_part), read from the parts it rests on."""
    from accelbench.hardware_profiles.pricing import cost_part

    parts = ("status", "execution", "scenario", "metrics", "profile_data")
    return cost_part(Record.parse({k: record[k] for k in parts}, "the record's cost parts"))


def _graph_summary(graph: dict[str, Any] | None) -> dict[str, Any] | None:
    if not graph:
        return None
    return {k: v for k, v in graph.items() if k != "ops"}


class _Progress:
    """A rich progress bar on stderr, silent when disabled: cells done of the plan's, and an ETA
    from the plan's estimated seconds (so a preparation or a slow cell counts for what it costs)."""

    def __init__(self, plan: run_plan.Plan, enabled: bool) -> None:
        self._bar = None
        self._pending = dict(plan.cell_s)
        self._jobs = dict(plan.job_s)
        self._done = 0
        if enabled and (plan.cells or plan.jobs):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[done]}/{task.fields[cells]} cells"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            total = max(plan.total_s, 1e-9)
            self._task = self._bar.add_task("cells", total=total, done=0, cells=len(plan.cells))
            self._bar.start()

    def start(self, cell: Cell) -> None:
        self.describe(f"{cell.model} {cell.optimization} {cell.profile} {cell.scenario}")

    def describe(self, text: str) -> None:
        if self._bar:
            self._bar.update(self._task, description=text)

    def advance_job(self, model: str) -> None:
        if self._bar:
            self._bar.advance(self._task, self._jobs.pop(model, 0.0))

    def advance(self, record: dict[str, Any]) -> None:
        if self._bar:
            # A cell of several configurations writes several records: it counts once.
            cell_id = record.get("parent_cell_id") or record["cell_id"]
            if cell_id in self._pending:
                self._done += 1
                self._bar.update(self._task, advance=self._pending.pop(cell_id), done=self._done)
            if record["status"] != "ok":
                self._bar.console.print(
                    f"[yellow]{record['cell_id']}: {record['status']}: {record['error']}[/yellow]"
                )

    def stop(self) -> None:
        if self._bar:
            self._bar.stop()
