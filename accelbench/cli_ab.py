"""The ``accelbench ab`` command: two models timed against each other, pair by pair."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError

FORMATS = ("table", "markdown", "json")


def register(sub: Any) -> None:
    """Add ``accelbench ab`` to the CLI's subcommands."""
    from accelbench.benchmarks.paired import DEFAULT_PAIRS, DEFAULT_ROUNDS, DEFAULT_THRESHOLD
    from accelbench.cli import _csv

    p = sub.add_parser(
        "ab",
        help="time NEW against BASE query by query in one process; exit 1 on a regression",
        description="Load BASE and NEW together in one isolated worker per (profile, threads) "
        "and call them alternately, in pairs of queries in a seeded random order, so that a "
        "machine whose speed drifts slows both sides of every pair alike. Prints the ratio "
        "NEW/BASE of their call times (Hodges-Lehmann estimate of the per-pair ratios, 95% "
        "signed-rank interval), the range of the per-round median ratios, each side's p50, and "
        "a verdict against --threshold: regressed (interval above 1, estimate above "
        "1+threshold), improved (the mirror image), unchanged (interval within 1 +/- threshold) "
        "or inconclusive. Exit 0: no regression, 1: a regression or a failed comparison, "
        "2: bad input.",
    )
    p.add_argument("base", help="the reference model (.tflite, SavedModel, .keras, .jaxexport)")
    p.add_argument("new", help="the model compared with it (any kind accelbench opens)")
    p.add_argument(
        "--profile",
        type=_csv("profile"),
        default=["host"],
        help="comma-separated host or emulated profiles (default: host); a projected profile "
        "cannot be timed",
    )
    p.add_argument(
        "--threads",
        type=_csv("threads", int),
        default=None,
        help="comma-separated thread counts (default: all cores / the device's cores)",
    )
    p.add_argument("--runtime", default=None, help="litert, tflite-runtime, tensorflow or jax")
    p.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
    p.add_argument("--inputs", default=None, help=".npy/.npz of real inputs for both sides")
    p.add_argument("--base-inputs", default=None, help=".npy/.npz for BASE (instead of --inputs)")
    p.add_argument("--new-inputs", default=None, help=".npy/.npz for NEW (instead of --inputs)")
    p.add_argument(
        "--pairs", type=int, default=DEFAULT_PAIRS, help=f"pairs per round ({DEFAULT_PAIRS})"
    )
    p.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds of pairs ({DEFAULT_ROUNDS})"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the call order and inputs (0)")
    p.add_argument(
        "--threshold",
        default=f"{DEFAULT_THRESHOLD:.0%}",
        help="smallest relative change that counts (%(default)s)",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per comparison (600)")
    p.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
    p.set_defaults(handler=run_ab)


def _check_args(args: argparse.Namespace) -> tuple[float, dict[str, str | None]]:
    """Refuse bad input before anything is written; returns the threshold and inputs per side."""
    from accelbench.benchmarks.paired import MIN_PAIRS
    from accelbench.cli import check_artifact
    from accelbench.report.compare import parse_threshold
    from accelbench.runtimes import RUNTIME_NAMES, artifact_kind, runtimes_for

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
    if args.runtime is not None and args.runtime not in RUNTIME_NAMES:
        raise UsageError(f"unknown runtime {args.runtime!r}; use one of {', '.join(RUNTIME_NAMES)}")
    if args.inputs and (args.base_inputs or args.new_inputs):
        raise UsageError("give --inputs for both sides, or --base-inputs/--new-inputs, not both")
    inputs = {"base": args.base_inputs or args.inputs, "new": args.new_inputs or args.inputs}
    for side in ("base", "new"):
        path = Path(getattr(args, side))
        check_artifact(path)
        kind = artifact_kind(path)
        if args.runtime is not None and args.runtime not in runtimes_for(kind):
            raise UsageError(
                f"runtime {args.runtime!r} cannot run {path} (a {kind} artifact); "
                f"use {' or '.join(repr(r) for r in runtimes_for(kind))} or leave --runtime out"
            )
        if args.no_xnnpack and kind != "tflite":
            raise UsageError(f"--no-xnnpack applies to .tflite models only, and {path} is {kind}")
        if inputs[side] is not None:
            _check_inputs(path, kind, Path(inputs[side]))
    return threshold, inputs


def _check_inputs(model: Path, kind: str, inputs: Path) -> None:
    """The inputs file exists and, for a .tflite or .jaxexport (cheap to open), fits the model."""
    from accelbench.runtimes import load_inputs, open_runtime

    if not inputs.is_file():
        raise UsageError(f"inputs file {inputs} does not exist; pass a .npy or .npz file")
    if kind not in ("tflite", "jaxexport"):
        return  # opening a SavedModel loads TensorFlow: its worker checks the inputs
    runtime = open_runtime(model, xnnpack=kind != "tflite")
    try:
        load_inputs(inputs, runtime.inputs())
    except UsageError as err:
        raise UsageError(f"{model.name}: {err}") from None
    finally:
        runtime.close()


def _cells(args: argparse.Namespace, inputs: dict[str, str | None]) -> list[Any]:
    """One cell per (profile, threads): BASE as the cell's model, NEW in its settings."""
    from accelbench.hardware_profiles import execution_mode, load_profile
    from accelbench.runner.suite import expand, suite_from_mapping

    for name in args.profile:
        profile = load_profile(name)
        execution = execution_mode(profile)
        if execution not in ("local", "emulated"):
            raise UsageError(
                f"profile {profile.name} runs {execution}, and paired timing needs both models "
                "really executed here; use host or an emulated profile (accelbench profiles list)"
            )
    base, new = Path(args.base).resolve(), Path(args.new).resolve()
    suite = suite_from_mapping(
        {
            "name": f"ab {base.name} {new.name}",
            "models": [{"path": str(base)}],
            "profiles": args.profile,
            "threads": args.threads,
            "runtime": args.runtime,
            "xnnpack": not args.no_xnnpack,
            "timeout_s": args.timeout,
            "seed": args.seed,
        },
        "command line",
    )
    cells = expand(suite)
    for cell in cells:
        cell.model = f"{base.stem}_vs_{new.stem}"
        cell.scenario = "paired"
        cell.preset = "paired"
        cell.inputs_path = str(Path(inputs["base"]).resolve()) if inputs["base"] else None
        cell.settings = {
            "ab": {
                "new_path": str(new),
                "base_inputs": cell.inputs_path,
                "new_inputs": str(Path(inputs["new"]).resolve()) if inputs["new"] else None,
                "pairs": args.pairs,
                "rounds": args.rounds,
            }
        }
    return cells


def run_ab(args: argparse.Namespace) -> int:
    """Measure every comparison, write one record each, print the verdicts; the exit status."""
    from accelbench.benchmarks.paired import verdict
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.records import append_record
    from accelbench.runner.sweep import new_run_dir, run_one

    threshold, inputs = _check_args(args)
    cells = _cells(args, inputs)
    run_dir = Path(args.out) if args.out else new_run_dir()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(
            f"run folder {run_dir} already exists and is not empty; choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)  # every check is done: now write
    environment = environment_fingerprint()
    records = []
    for cell in cells:
        print(
            f"ab: {cell.profile} ({cell.execution}), {cell.threads} thread(s): "
            f"{args.rounds} rounds x {args.pairs} pairs...",
            file=sys.stderr,
        )
        started = time.time()
        (record,) = run_one(cell, run_dir, run_dir.name, environment)
        record["paired"] = (record["settings"] or {}).pop("paired", None)
        record["settings"]["threshold"] = threshold
        if record["status"] == "ok" and record["paired"]:
            paired = record["paired"]
            paired["verdict"] = verdict(
                paired["ratio"], paired["ci_low"], paired["ci_high"], threshold
            )
        record["wall_s"] = time.time() - started
        append_record(run_dir, record)
        records.append(record)
    print(_render(records, args.format, threshold))
    if args.format != "json":
        print(f"records: {run_dir / 'records.jsonl'}")
    bad = [r for r in records if r["status"] != "ok" or r["paired"]["verdict"] == "regressed"]
    return 1 if bad else 0


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


def _render(records: list[dict[str, Any]], fmt: str, threshold: float) -> str:
    import json

    from accelbench.report.compare import text_table
    from accelbench.report.tables import markdown_table

    rows = comparison_rows(records)
    if fmt == "json":
        return json.dumps({"threshold": threshold, "comparisons": rows}, indent=2)
    header = ["profile", "thr", "NEW/BASE", "95% CI", "rounds min-max (n)", "base p50 ms",
              "new p50 ms", "verdict"]  # fmt: skip
    lines = []
    for row in rows:
        profile = row["profile"] + (" (emulated)" if row["execution"] == "emulated" else "")
        if row["verdict"] == "failed":
            lines.append([profile, str(row["threads"]), "-", "-", "-", "-", "-", "failed"])
            continue
        lines.append(
            [
                profile,
                str(row["threads"]),
                f"{row['ratio']:.3f}",
                f"{row['ci_low']:.3f}-{row['ci_high']:.3f}",
                f"{row['round_ratio_min']:.3f}-{row['round_ratio_max']:.3f} ({row['rounds']})",
                f"{row['base_p50_ms']:.4g}",
                f"{row['new_p50_ms']:.4g}",
                row["verdict"],
            ]
        )
    table = markdown_table(header, lines) if fmt == "markdown" else text_table(header, lines)
    notes = [f"threshold {threshold:.1%}; ratio = NEW time / BASE time (below 1: NEW is faster)"]
    notes += [
        f"{row['profile']} t{row['threads']}: failed: {row['error']}"
        for row in rows
        if row["verdict"] == "failed"
    ]
    return "\n".join([table, *notes])
