"""`accelbench ab`: two models, two HTTP endpoints, or two runs' artifacts cell by
cell, timed against each other pair by pair; and ``compare --rerun``, which times two runs'
artifacts the same way."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from accelbench.cli.base import (
    Command,
    add_api_key_arguments,
    add_model_trust_arguments,
    api_key,
    check_run_dir,
    comma_list,
)
from accelbench.errors import UsageError

FORMATS = ("table", "markdown", "json")


class Ab(Command):
    name = "ab"
    help = "time NEW against BASE query by query in one process; exit 1 on a regression"
    description = (
        "Load BASE and NEW together in one isolated worker per (profile, threads) "
        "and call them alternately, in pairs of queries in a seeded random order, so that a "
        "machine whose speed drifts slows both sides of every pair alike. Prints the ratio "
        "NEW/BASE of their call times (Hodges-Lehmann estimate of the per-pair ratios, 95% "
        "signed-rank interval), the range of the per-round median ratios, each side's p50, and "
        "a verdict against --threshold: regressed (interval above 1, estimate above "
        "1+threshold), improved (the mirror image), unchanged (interval within 1 +/- threshold) "
        "or inconclusive. BASE and NEW may instead be two run folders or baselines "
        "(baseline:NAME, a baseline file): their cells are matched as compare matches them, and "
        "each matched LoadGen cell's two artifacts (checked against the recorded sha256) are "
        "re-measured with the cell's profile, threads, runtime and inputs, one measurement per "
        "artifact pair and setting; a cell whose artifact is gone or changed is skipped with "
        "the reason. BASE and NEW may also be two TensorFlow Serving REST endpoints (URLs, with "
        "--model): requests go to them one at a time, a pair's two back to back with the same "
        "sample, from this process as 'accelbench load' sends them (no model is loaded here, "
        "so there is no worker or sandbox; the servers are what is timed). Exit 0: no "
        "regression, 1: a regression or a failed comparison, 2: bad input (for two runs: also "
        "nothing that can be re-measured; for endpoints: also one that does not answer)."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.benchmarks.paired import DEFAULT_PAIRS, DEFAULT_ROUNDS, DEFAULT_THRESHOLD
        from accelbench.runtimes.registry import names_text as runtime_names_text

        parser.add_argument(
            "base",
            help="the reference model (.tflite, SavedModel, .keras, .jaxexport), a run folder or "
            "baseline, or an endpoint URL such as http://127.0.0.1:8501",
        )
        parser.add_argument(
            "new", help="the model compared with it, a run folder or baseline, or an endpoint URL"
        )
        parser.add_argument("--model", default=None, help="endpoints: the model's name on both")
        parser.add_argument(
            "--base-model", default=None, help="endpoints: the model's name on BASE"
        )
        parser.add_argument("--new-model", default=None, help="endpoints: the model's name on NEW")
        parser.add_argument(
            "--profile",
            type=comma_list("profile"),
            default=None,
            help="comma-separated host or emulated profiles (default: host); a projected profile "
            "cannot be timed",
        )
        parser.add_argument(
            "--threads",
            type=comma_list("threads", int),
            default=None,
            help="comma-separated thread counts (default: all cores / the device's cores)",
        )
        parser.add_argument("--runtime", default=None, help=runtime_names_text())
        parser.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
        parser.add_argument(
            "--inputs", default=None, help=".npy/.npz of real inputs for both sides"
        )
        parser.add_argument(
            "--base-inputs", default=None, help=".npy/.npz for BASE (instead of --inputs)"
        )
        parser.add_argument(
            "--new-inputs", default=None, help=".npy/.npz for NEW (instead of --inputs)"
        )
        parser.add_argument(
            "--pairs", type=int, default=DEFAULT_PAIRS, help=f"pairs per round ({DEFAULT_PAIRS})"
        )
        parser.add_argument(
            "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds of pairs ({DEFAULT_ROUNDS})"
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="seed of the call order and inputs (0)"
        )
        parser.add_argument(
            "--threshold",
            default=f"{DEFAULT_THRESHOLD:.0%}",
            help="smallest relative change that counts (%(default)s)",
        )
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="seconds per comparison (600)"
        )
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        parser.add_argument(
            "--store", default=None, help="baseline store for baseline:NAME (default: see baseline)"
        )
        add_model_trust_arguments(parser)
        add_api_key_arguments(parser, "send to both endpoints as 'Authorization: Bearer KEY'")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Measure every comparison, write one record each, print the verdicts; the exit
        status."""
        from accelbench.runner.rerun import paired_cells

        if _is_url(args.base) or _is_url(args.new):
            return _run_ab_endpoints(args)
        given = [flag for flag, attr in ENDPOINT_FLAGS.items() if getattr(args, attr) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(
                f"{', '.join(given)} {verb} to two endpoint URLs, not to files or runs"
            )
        if _is_run(args.base) or _is_run(args.new):
            return _run_ab_runs(args)
        if args.store is not None:
            raise UsageError("--store applies to baseline:NAME; BASE and NEW here are model files")
        threshold, inputs = _check_args(args)
        cells = paired_cells(
            Path(args.base),
            Path(args.new),
            profiles=args.profile or ["host"],
            threads=args.threads,
            runtime=args.runtime,
            xnnpack=not args.no_xnnpack,
            timeout_s=args.timeout,
            seed=args.seed,
            pairs=args.pairs,
            rounds=args.rounds,
            base_inputs=inputs["base"],
            new_inputs=inputs["new"],
            sandbox=not args.no_sandbox,
            trust_model=args.trust_model,
        )
        run_dir = _new_run_dir(args.out)
        records = _measure_all(cells, run_dir, threshold)
        print(_render(comparison_rows(records), args.format, threshold))
        if args.format != "json":
            print(f"records: {run_dir / 'records.jsonl'}")
        bad = [r for r in records if r["status"] != "ok" or r["paired"]["verdict"] == "regressed"]
        return 1 if bad else 0


def _check_args(args: argparse.Namespace) -> tuple[float, dict[str, str | None]]:
    """Refuse bad input before anything is written; returns the threshold and inputs per side."""
    from accelbench.runtimes import artifact_kind, runtimes_for
    from accelbench.runtimes.registry import runtime_info
    from accelbench.runtimes.validate import check_artifact, check_inputs

    threshold = _check_measurement(args)
    if args.runtime is not None:
        runtime_info(args.runtime)  # an unknown name: the UsageError that lists the known ones
    if args.inputs and (args.base_inputs or args.new_inputs):
        raise UsageError("give --inputs for both sides, or --base-inputs/--new-inputs, not both")
    inputs = {"base": args.base_inputs or args.inputs, "new": args.new_inputs or args.inputs}
    for side in ("base", "new"):
        path = Path(getattr(args, side))
        check_artifact(path, trust=args.trust_model)
        kind = artifact_kind(path)
        if args.runtime is not None and args.runtime not in runtimes_for(kind):
            raise UsageError(
                f"runtime {args.runtime!r} cannot run {path} (a {kind} artifact); "
                f"use {' or '.join(repr(r) for r in runtimes_for(kind))} or leave --runtime out"
            )
        if args.no_xnnpack and kind != "tflite":
            raise UsageError(f"--no-xnnpack applies to .tflite models only, and {path} is {kind}")
        if inputs[side] is not None:
            check_inputs(path, Path(inputs[side]))
    return threshold, inputs


ENDPOINT_FLAGS = {
    "--model": "model",
    "--base-model": "base_model",
    "--new-model": "new_model",
    "--api-key": "api_key",
    "--api-key-file": "api_key_file",
}
# What only files are measured with; each endpoint's server has its own settings.
FILE_FLAGS = {
    "--profile": "profile",
    "--threads": "threads",
    "--runtime": "runtime",
    "--no-xnnpack": "no_xnnpack",
    "--base-inputs": "base_inputs",
    "--new-inputs": "new_inputs",
    "--trust-model": "trust_model",
    "--no-sandbox": "no_sandbox",
    "--store": "store",
}


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def _run_ab_endpoints(args: argparse.Namespace) -> int:
    """``ab URL URL``: two endpoints timed against each other from this process; every check
    (flags, both endpoints answering for their model, inputs that fit both) before writing."""
    from accelbench.benchmarks.serving import endpoint_samples
    from accelbench.cli.load import server_threads
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.records import append_record
    from accelbench.runner.rerun import endpoint_cell, measure_endpoints
    from accelbench.runtimes.remote import REQUEST_TIMEOUT_S, RemoteRuntime, probe_endpoint

    if not (_is_url(args.base) and _is_url(args.new)):
        other, url = (args.new, args.base) if _is_url(args.base) else (args.base, args.new)
        raise UsageError(
            f"{other} is not an endpoint URL while {url} is; give two URLs (with --model), two "
            "model files or two runs"
        )
    threshold = _check_measurement(args)
    given = [flag for flag, attr in FILE_FLAGS.items() if getattr(args, attr)]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(
            f"{', '.join(given)} {verb} to model files; an endpoint is measured as its server "
            "runs it"
        )
    models = _endpoint_models(args)
    if args.inputs and not Path(args.inputs).is_file():
        raise UsageError(f"inputs file {args.inputs} does not exist; pass a .npy or .npz file")
    key = api_key(args)
    run_dir = _new_run_dir(args.out)
    check_run_dir(run_dir)
    base = probe_endpoint(args.base, models["base"], api_key=key)
    new = probe_endpoint(args.new, models["new"], api_key=key)
    if [s.to_dict() for s in base.inputs] != [s.to_dict() for s in new.inputs]:
        raise UsageError(
            f"{base.url} {base.model!r} and {new.url} {new.model!r} take different inputs "
            f"({_specs(base.inputs)} vs {_specs(new.inputs)}); a pair sends both the same sample"
        )
    threads = {server_threads(e.server_stats) for e in (base, new)}
    timeout_s = min(REQUEST_TIMEOUT_S, args.timeout)
    # One connection each, one request at a time: a pair's requests never overlap.
    endpoints = [RemoteRuntime(e, concurrency=1, timeout_s=timeout_s) for e in (base, new)]
    try:
        samples = endpoint_samples(endpoints[0], args.inputs, seed=args.seed)
        cell = endpoint_cell(
            base,
            new,
            inputs=args.inputs,
            seed=args.seed,
            pairs=args.pairs,
            rounds=args.rounds,
            timeout_s=args.timeout,
            threads=threads.pop() if len(threads) == 1 else 0,
        )
        run_dir.mkdir(parents=True, exist_ok=True)  # every check is done: now write
        environment = environment_fingerprint()
        record = measure_endpoints(cell, endpoints, samples, run_dir, environment, threshold)
        append_record(run_dir, record)
    finally:
        for endpoint in endpoints:
            endpoint.close()
    print(_render(comparison_rows([record]), args.format, threshold))
    if args.format != "json":
        print(f"base: {base.url} model {base.model}; new: {new.url} model {new.model}")
        print(f"records: {run_dir / 'records.jsonl'}")
    bad = record["status"] != "ok" or record["paired"]["verdict"] == "regressed"
    return 1 if bad else 0


def _endpoint_models(args: argparse.Namespace) -> dict[str, str]:
    """The model's name on each endpoint: --model for both, or --base-model and --new-model."""
    from accelbench.serving import MODEL_NAME

    if args.model is not None and (args.base_model is not None or args.new_model is not None):
        raise UsageError("give --model for both endpoints, or --base-model and --new-model")
    models = {"base": args.base_model or args.model, "new": args.new_model or args.model}
    for side, name in models.items():
        if name is None:
            raise UsageError(
                f"name the model on the {side.upper()} endpoint: --model NAME for both, or "
                "--base-model and --new-model"
            )
        if not MODEL_NAME.fullmatch(name):
            raise UsageError(
                f"{name!r} is not a model name; use letters, digits, '_', '.' or '-', starting "
                "with a letter or digit"
            )
    return models


def _specs(specs: list[Any]) -> str:
    return ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in specs)


def _is_run(spec: str) -> bool:
    """True when spec names a run or a baseline (what compare reads), not a model artifact."""
    from accelbench.records import RECORDS_FILE
    from accelbench.report.baselines import PREFIX, is_baseline_file

    path = Path(spec)
    if spec.startswith(PREFIX) or (path / RECORDS_FILE).is_file():
        return True
    return path.is_file() and (path.name == RECORDS_FILE or is_baseline_file(path))


def _run_ab_runs(args: argparse.Namespace) -> int:
    """``ab RUN RUN``: the matched cells of two runs or baselines, their artifacts re-measured."""
    threshold = _check_rerun_args(args)
    plan, cells = _plan(args)
    run_dir = _new_run_dir(args.out)
    _measure_plan(plan, cells, run_dir, threshold)
    rows = _run_rows(plan)
    print(_render(rows, args.format, threshold, plan))
    if args.format != "json":
        print(f"records: {run_dir / 'records.jsonl'}")
    bad = [row for row in rows if row["verdict"] in ("failed", "regressed")]
    return 1 if bad else 0


def _check_rerun_args(args: argparse.Namespace) -> float:
    """Refuse ab's per-file flags for two runs (each cell's own settings are used) and bad
    numbers; returns the threshold."""
    threshold = _check_measurement(args)
    per_file = {
        "--profile": getattr(args, "profile", None),
        "--threads": getattr(args, "threads", None),
        "--runtime": getattr(args, "runtime", None),
        "--no-xnnpack": getattr(args, "no_xnnpack", False),
        "--inputs": getattr(args, "inputs", None),
        "--base-inputs": getattr(args, "base_inputs", None),
        "--new-inputs": getattr(args, "new_inputs", None),
        "--trust-model": getattr(args, "trust_model", False),
    }
    given = [flag for flag, value in per_file.items() if value]
    if given:
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to two model "
            "files; for two runs or baselines each "
            "matched cell is re-measured with its own profile, threads, runtime and inputs"
        )
    if not _is_run(args.base) or not _is_run(args.new):
        model = args.new if _is_run(args.base) else args.base
        raise UsageError(
            f"{model} is not a run folder or baseline while the other side is; give two model "
            "files or two runs/baselines"
        )
    return threshold


def _check_measurement(args: argparse.Namespace) -> float:
    """--threshold, --pairs, --rounds and --timeout, for files and runs alike; the threshold."""
    from accelbench.benchmarks.paired import MIN_PAIRS
    from accelbench.report.compare import parse_threshold

    threshold = parse_threshold(args.threshold)
    for flag in ("pairs", "rounds"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if args.pairs * args.rounds < MIN_PAIRS:
        raise UsageError(
            f"--pairs x --rounds gives {args.pairs * args.rounds} pairs, too few for a 95% "
            f"interval; give at least {MIN_PAIRS} (the default is 200 x 5)"
        )
    if not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    return threshold


def _plan(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The re-measurement plan of two runs and its paired cells; every check before writing."""
    from accelbench.report.compare import load_source, match_cells
    from accelbench.runner.rerun import plan_cells, plan_rerun

    base = load_source(args.base, args.store)
    new = load_source(args.new, args.store)
    plan = plan_rerun(base, new, lambda b, n: match_cells(b, n).common)
    cells = plan_cells(
        plan,
        timeout_s=args.timeout,
        seed=args.seed,
        pairs=args.pairs,
        rounds=args.rounds,
        sandbox=not getattr(args, "no_sandbox", False),
    )
    return plan, cells


def _new_run_dir(out: str | None) -> Path:
    from accelbench.runner.sweep import new_run_dir

    run_dir = Path(out) if out else new_run_dir()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(
            f"run folder {run_dir} already exists and is not empty; choose another --out"
        )
    return run_dir


def _measure_all(cells: list[Any], run_dir: Path, threshold: float) -> list[dict[str, Any]]:
    """Each paired cell measured in its worker, its record appended as it finishes."""
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.records import append_record
    from accelbench.runner.rerun import measure

    run_dir.mkdir(parents=True, exist_ok=True)  # every check is done: now write
    environment = environment_fingerprint()
    records = []
    for cell in cells:
        record = measure(cell, run_dir, environment, threshold)
        append_record(run_dir, record)
        records.append(record)
    return records


def _measure_plan(plan: Any, cells: list[Any], run_dir: Path, threshold: float) -> None:
    records = _measure_all(cells, run_dir, threshold)
    for measurement, record in zip(plan.measurements, records, strict=True):
        measurement.record = record


def compare_rerun(args: argparse.Namespace, fail_on: tuple[str, ...]) -> int | None:
    """``compare BASE NEW --rerun``: size and quality verdicts from the records, time verdicts
    from the artifacts re-measured paired (as ``ab BASE NEW``), printed in compare's formats;
    the exit status (1 also when a re-measurement failed). None without --rerun, after
    refusing the flags that only --rerun reads."""
    from accelbench.benchmarks.paired import DEFAULT_PAIRS, DEFAULT_ROUNDS
    from accelbench.report.compare import compare_runs, exit_code

    rerun_only = ("pairs", "rounds", "seed", "timeout", "out")
    if not args.rerun:
        given = [f"--{flag}" for flag in rerun_only if getattr(args, flag) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{', '.join(given)} {verb} only with --rerun")
        return None
    defaults = {"pairs": DEFAULT_PAIRS, "rounds": DEFAULT_ROUNDS, "seed": 0, "timeout": 600.0}
    for flag, value in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    if args.new is None:
        raise UsageError("--rerun needs BASE and NEW, two runs or baselines with their artifacts")
    threshold = _check_rerun_args(args)
    plan, cells = _plan(args)
    comparison_args = dict(
        threshold=threshold,
        alpha=args.alpha,
        allow_different_hardware=args.allow_different_hardware,
        size_policy=args.size_policy,
    )
    # compare's own input errors, before anything is written (no time rows: nothing to test).
    compare_runs(plan.base, plan.new, **comparison_args, time_verdicts={})
    run_dir = _new_run_dir(args.out)
    _measure_plan(plan, cells, run_dir, threshold)
    comparison = compare_runs(
        plan.base, plan.new, **comparison_args, time_verdicts=plan.time_verdicts()
    )
    comparison.settings["rerun_records"] = str(run_dir / "records.jsonl")
    for warning in comparison.warnings:
        print(f"accelbench: warning: {warning}", file=sys.stderr)
    for m in plan.failed():
        print(
            f"accelbench: error: re-measurement of {', '.join(m.cells)} failed: "
            f"{(m.record or {}).get('error')}",
            file=sys.stderr,
        )
    output = {
        "table": comparison.to_table,
        "markdown": comparison.to_markdown,
        "json": comparison.to_json,
    }[args.format]
    print(output())
    if args.format == "table":
        print(f"paired records: {run_dir / 'records.jsonl'}")
    return max(exit_code(comparison, fail_on=fail_on), int(bool(plan.failed())))


def add_rerun_arguments(parser: argparse.ArgumentParser) -> None:
    """compare's --rerun and the settings of its paired measurements."""
    from accelbench.benchmarks.paired import DEFAULT_PAIRS, DEFAULT_ROUNDS

    parser.add_argument(
        "--rerun",
        action="store_true",
        help="time verdicts from re-measuring both sides' artifacts now, paired query by query "
        "(as 'accelbench ab BASE NEW'), instead of from the recorded latencies; exit 1 also when "
        "a re-measurement fails",
    )
    parser.add_argument("--pairs", type=int, help=f"--rerun: pairs per round ({DEFAULT_PAIRS})")
    parser.add_argument("--rounds", type=int, help=f"--rerun: rounds of pairs ({DEFAULT_ROUNDS})")
    parser.add_argument("--seed", type=int, help="--rerun: seed of the call order (0)")
    parser.add_argument("--timeout", type=float, help="--rerun: seconds per measurement (600)")
    parser.add_argument(
        "--out", default=None, help="--rerun: folder of the paired records (results/<timestamp>)"
    )


def _run_rows(plan: Any) -> list[dict[str, Any]]:
    """One row per matched cell: its measurement's figures (shared by the cells it stands for),
    or the reason it was not re-measured."""
    rows = []
    for m in plan.measurements:
        (shared,) = comparison_rows([m.record])
        for cell_id in m.cells:
            rows.append({**shared, "measurement": shared["cell_id"], "cell_id": cell_id})
    for skipped in plan.skipped:
        record = plan.base.cells[skipped["cell_id"]]
        rows.append(
            {
                "cell_id": skipped["cell_id"],
                "profile": record.get("profile"),
                "execution": record.get("execution"),
                "threads": record.get("threads"),
                "status": "skipped",
                "error": skipped["reason"],
                "verdict": "skipped",
            }
        )
    return rows


def comparison_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One plain dict per comparison record: what the table shows and the JSON holds."""
    rows = []
    for r in records:
        paired = r.get("paired") or {}
        metrics = r.get("metrics") or {}
        ok = r["status"] == "ok" and bool(paired)
        rows.append(
            {
                "cell_id": r["cell_id"],
                "profile": r["profile"],
                "execution": r["execution"],
                "threads": r["threads"],
                "status": r["status"],
                "error": r.get("error"),
                "verdict": paired.get("verdict") if ok else "failed",
                "ratio": paired.get("ratio"),
                "ci_low": paired.get("ci_low"),
                "ci_high": paired.get("ci_high"),
                "confidence": paired.get("confidence"),
                "round_ratio_min": paired.get("round_ratio_min"),
                "round_ratio_max": paired.get("round_ratio_max"),
                "rounds": paired.get("rounds"),
                "pairs": paired.get("pairs"),
                "base_p50_ms": (metrics.get("base_p50_ms") or {}).get("value"),
                "new_p50_ms": (metrics.get("new_p50_ms") or {}).get("value"),
            }
        )
    return rows


def _render(rows: list[dict[str, Any]], fmt: str, threshold: float, plan: Any | None = None) -> str:
    """The comparisons as a table, Markdown or JSON; for two runs (`plan`), one row per matched
    cell, the skipped ones with their reason."""
    import json

    from accelbench.report.compare import text_table
    from accelbench.report.tables import markdown_table

    if fmt == "json":
        payload: dict[str, Any] = {"threshold": threshold}
        if plan is not None:
            payload["base"] = plan.base.describe()
            payload["new"] = plan.new.describe()
            payload["skipped"] = plan.skipped
            rows = [r for r in rows if r["verdict"] != "skipped"]
        return json.dumps({**payload, "comparisons": rows}, indent=2)
    # fmt: skip below: 8 names packed as a paragraph, not one per line.
    header = ["profile", "thr", "NEW/BASE", "95% CI", "rounds min-max (n)", "base p50 ms",
              "new p50 ms", "verdict"]  # fmt: skip
    if plan is not None:
        header = ["cell", "execution", *header[2:]]
    lines = []
    for row in rows:
        if plan is not None:
            where = [row["cell_id"], str(row["execution"])]
        else:
            emulated = " (emulated)" if row["execution"] == "emulated" else ""
            where = [row["profile"] + emulated, str(row["threads"])]
        if row["verdict"] in ("failed", "skipped"):
            lines.append([*where, "-", "-", "-", "-", "-", row["verdict"]])
            continue
        lines.append(
            [
                *where,
                f"{row['ratio']:.3f}",
                f"{row['ci_low']:.3f}-{row['ci_high']:.3f}",
                f"{row['round_ratio_min']:.3f}-{row['round_ratio_max']:.3f} ({row['rounds']})",
                f"{row['base_p50_ms']:.4g}",
                f"{row['new_p50_ms']:.4g}",
                row["verdict"],
            ]
        )
    table = markdown_table(header, lines) if fmt == "markdown" else text_table(header, lines)
    notes = []
    if plan is not None:
        notes.append(f"base: {plan.base.label}; new: {plan.new.label}")
        shared = len(rows) - len(plan.skipped) - len(plan.measurements)
        if shared > 0:
            notes.append(
                f"{len(plan.measurements)} paired measurements for "
                f"{len(rows) - len(plan.skipped)} cells: cells of the same artifact pair, "
                "profile, threads and runtime share one"
            )
    notes.append(
        f"threshold {threshold:.1%}; ratio = NEW time / BASE time (below 1: NEW is faster)"
    )
    for row in rows:
        if row["verdict"] in ("failed", "skipped"):
            where = row["cell_id"] if plan is not None else f"{row['profile']} t{row['threads']}"
            notes.append(f"{where}: {row['verdict']}: {row['error']}")
    return "\n".join([table, *notes])
