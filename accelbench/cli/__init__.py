"""The command line: parses arguments, calls the library, sets the exit code (2 for bad input)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from accelbench import __version__
from accelbench.cli.base import (
    EXIT_OK,
    EXIT_STATUSES,
    EXIT_USAGE,
    Parser,
    add_data_arguments,
    add_model_trust_arguments,
    add_no_cache_argument,
    comma_list,
    execute_suite,
    resume_run,
    run_guarded,
    trust_settings,
)
from accelbench.errors import UsageError
from accelbench.runtimes.registry import names_text as runtime_names_text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="accelbench",
        description="Benchmark models on this host and on emulated or projected hardware "
        "profiles, with MLPerf LoadGen, into comparable records.",
        epilog=EXIT_STATUSES,
    )
    p.add_argument("--version", action="version", version=f"accelbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    b = sub.add_parser(
        "bench", help="benchmark one model (.tflite, SavedModel, .keras, .jaxexport)"
    )
    b.add_argument("model", nargs="?", help="model artifact; omit with --resume")
    b.add_argument(
        "--profile",
        type=comma_list("profile"),
        default=["host"],
        help="comma-separated profile names or YAML paths (default: host)",
    )
    b.add_argument(
        "--threads",
        type=comma_list("threads", int),
        default=None,
        help="comma-separated thread counts (default: all cores / the device's cores)",
    )
    b.add_argument(
        "--scenario",
        type=comma_list("scenario"),
        default=["single-stream"],
        help="single-stream, multi-stream, offline, server (default: single-stream)",
    )
    b.add_argument("--preset", default="quick", help="quick (default), standard or mlperf")
    b.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="offline and server: up to N queued samples per runtime call, for a model with a "
        "dynamic batch dimension (default: one sample per call; a fixed batch dimension B is "
        "always B); single-stream and multi-stream keep one sample per query",
    )
    b.add_argument("--runtime", default=None, help=runtime_names_text())
    b.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
    b.add_argument("--inputs", default=None, help=".npy/.npz file of real inputs")
    b.add_argument("--name", default=None, help="model name in records (default: file stem)")
    b.add_argument("--timeout", type=float, default=600.0, help="seconds per cell (default 600)")
    b.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
    b.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="run only the cells of RUN_DIR not yet recorded",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_trust_arguments(b)

    r = sub.add_parser(
        "run", help="run a suite: the default suite, --suite full, or your SUITE.yaml"
    )
    r.add_argument(
        "suite_file",
        nargs="?",
        metavar="SUITE.yaml",
        help="suite YAML (default: the built-in default suite)",
    )
    r.add_argument("--suite", default=None, help="a built-in suite: default, full or ci")
    r.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
    r.add_argument("--resume", default=None, metavar="RUN_DIR")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (cells by model, optimization, profile, scenario) and the "
        "estimated wall time on this machine; run and write nothing",
    )
    add_no_cache_argument(r)
    add_model_trust_arguments(r)

    o = sub.add_parser(
        "optimize", help="optimize your Keras model every way and benchmark each artifact"
    )
    o.add_argument("model", help=".keras, .h5 or SavedModel folder")
    add_data_arguments(o, required=True)
    o.add_argument(
        "--optimizations",
        type=comma_list("optimizations"),
        default=None,
        help="comma-separated, e.g. fp32,int8,prune50+int8 (default: the default suite's)",
    )
    o.add_argument("--profile", type=comma_list("profile"), default=["host"])
    o.add_argument("--threads", type=comma_list("threads", int), default=None)
    o.add_argument("--scenario", type=comma_list("scenario"), default=["single-stream"])
    o.add_argument("--preset", default="quick")
    o.add_argument("--fine-tune-epochs", type=int, default=2)
    o.add_argument("--name", default=None, help="model name in records (default: file stem)")
    o.add_argument("--out", default=None)
    o.add_argument("--no-progress", action="store_true")
    add_no_cache_argument(o)
    add_model_trust_arguments(o)

    rec = sub.add_parser("recommend", help="what in a run meets a latency/quality/size budget")
    rec.add_argument("run_dir")
    rec.add_argument("--max-latency-ms", type=float, default=None)
    rec.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="minimum quality (accuracy, or AUC for the anomaly detector)",
    )
    rec.add_argument("--max-size-mb", type=float, default=None)
    rec.add_argument("--profile", default=None, help="only this profile")

    cmp_ = sub.add_parser(
        "compare",
        help="compare two runs, baselines or pytest-benchmark files; exit 1 on regression",
        description="BASE and NEW are each a run folder, baseline:NAME (or a baseline .jsonl "
        "file), a pytest-benchmark JSON file, or a pytest-benchmark storage folder (its latest "
        "file; given alone, its two latest files are compared). Exit 0: no regression, 1: a "
        "regression, 2: usage or input error, 3: internal error. Where both runs timed the "
        "machine-speed canary and it moved by more than half the threshold, a latency verdict "
        "must also hold relative to the canary's ratio, else it is inconclusive. With --rerun "
        "(two runs or baselines), the time verdicts come instead from re-measuring both sides' "
        "artifacts now, paired, as 'accelbench ab BASE NEW' does.",
    )
    cmp_.add_argument("base", help="run folder, baseline:NAME, baseline file or pytest-benchmark")
    cmp_.add_argument("new", nargs="?", default=None, help="the same kinds as BASE")
    cmp_.add_argument("--threshold", default="5%", help="smallest relative change that counts")
    cmp_.add_argument("--alpha", type=float, default=0.01, help="significance level (after FDR)")
    cmp_.add_argument("--fail-on", default="regressed", help="verdicts that make the exit 1")
    cmp_.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    cmp_.add_argument("--allow-different-hardware", action="store_true")
    cmp_.add_argument(
        "--size-policy",
        choices=("exact", "threshold"),
        default="exact",
        help="exact: one byte larger is regressed (default); threshold: only past --threshold",
    )
    cmp_.add_argument(
        "--store", default=None, help="baseline store for baseline:NAME (default: see baseline)"
    )
    from accelbench.cli_ab import add_rerun_arguments

    add_rerun_arguments(cmp_)

    m = sub.add_parser("models", help="the reference model zoo")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", parser_class=Parser)
    msub.add_parser("list", help="list the reference models")

    pr = sub.add_parser("profiles", help="list, show, validate, detect and calibrate profiles")
    psub = pr.add_subparsers(dest="profiles_command", metavar="ACTION", parser_class=Parser)
    psub.add_parser("list", help="list built-in profiles")
    s = psub.add_parser("show", help="print one profile as YAML")
    s.add_argument("name", help="profile name or YAML path")
    v = psub.add_parser("validate", help="validate a profile YAML file")
    v.add_argument("file")
    psub.add_parser("detect", help="print the profile detected for this host")
    c = psub.add_parser("calibrate", help="measure this host's peak compute and bandwidth")
    c.add_argument("--seconds", type=float, default=3.0, help="time budget (default 3 s)")

    res = sub.add_parser("results", help="show a run's results")
    rsub = res.add_subparsers(dest="results_command", metavar="ACTION", parser_class=Parser)
    rs = rsub.add_parser("show", help="print the table of a run folder")
    rs.add_argument("run_dir")
    for module in _COMMAND_MODULES:
        _load_commands(module, sub)
    return p


# Commands that live in their own modules: each has ``register(sub)``, which adds its parsers
# and sets ``handler`` (a function of the parsed arguments returning the exit status) on them.
# These modules import no framework at top level, so --help stays fast.
_COMMAND_MODULES = (
    "accelbench.cli_pipeline",
    "accelbench.cli_training",
    "accelbench.cli_serving",
    "accelbench.cli_load",
    "accelbench.cli_history",
    "accelbench.cli_ab",
    "accelbench.cli_inspect",
)


def _load_commands(module: str, sub: Any) -> None:
    import importlib

    importlib.import_module(module).register(sub)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status. No traceback reaches the terminal (see EXIT_STATUSES)."""
    return run_guarded(lambda: _parse_and_run(argv), argv)


def _parse_and_run(argv: list[str] | None) -> int:
    # Inside run_guarded: the help names the registered runtimes, and a runtime that
    # $ACCELBENCH_RUNTIMES names but Python cannot import is a UsageError.
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return _dispatch(args, parser)


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "run":
        return _run(args)
    if args.command == "profiles":
        return _profiles(args)
    if args.command == "optimize":
        return _optimize(args)
    if args.command == "recommend":
        return _recommend(args)
    if args.command == "models":
        return _models(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "results":
        if args.results_command != "show":
            raise UsageError("say 'accelbench results show RUN_DIR'")
        from accelbench.report.tables import load_run, print_table

        run_dir = Path(args.run_dir)
        print_table(load_run(run_dir), title=f"run {run_dir.name}")
        return EXIT_OK
    raise UsageError(f"unknown command {args.command!r}; see 'accelbench --help'")


def _bench(args: argparse.Namespace) -> int:
    from accelbench.runner.suite import suite_from_mapping

    if args.resume:
        if args.model:
            raise UsageError(
                f"--resume continues {args.resume} with the models it was started with; drop "
                f"{args.model}, or benchmark it into a new folder with --out"
            )
        return resume_run(Path(args.resume), progress=not args.no_progress)
    if not args.model:
        raise UsageError("name a model file to benchmark, or --resume RUN_DIR")
    from accelbench.runtimes.validate import check_artifact

    model = Path(args.model)
    check_artifact(model, trust=args.trust_model)
    entry: dict[str, Any] = {"path": str(model.resolve())}
    if args.name:
        entry["name"] = args.name
    if args.inputs:
        inputs = Path(args.inputs)
        if not inputs.is_file():
            raise UsageError(f"inputs file {inputs} does not exist; pass a .npy or .npz file")
        entry["inputs"] = str(inputs.resolve())
    suite = suite_from_mapping(
        {
            "name": f"bench {model.name}",
            "models": [entry],
            "profiles": args.profile,
            "threads": args.threads,
            "scenarios": args.scenario,
            "preset": args.preset,
            "runtime": args.runtime,
            "xnnpack": not args.no_xnnpack,
            "timeout_s": args.timeout,
            "batch_size": args.batch_size,
            **trust_settings(args),
        },
        "command line",
    )
    # execute_suite checks the suite's batch size against the model (runner.suite.check_suite).
    return execute_suite(suite, Path(args.out) if args.out else None, progress=not args.no_progress)


def _run(args: argparse.Namespace) -> int:
    from accelbench.runner.suite import host_cores, load_suite, suite_from_mapping
    from accelbench.runner.suites import BUILTIN_SUITES, builtin_suite

    if args.resume:
        if args.dry_run:
            raise UsageError(
                "--dry-run plans a new run; drop --resume (a resumed run prints its plan of the "
                "cells left as its first line)"
            )
        if args.suite_file or args.suite:
            raise UsageError(
                f"--resume continues {args.resume} with the suite it was started with; drop "
                f"{args.suite_file or '--suite ' + args.suite}, or start a new run with --out"
            )
        return resume_run(Path(args.resume), progress=not args.no_progress, cache=not args.no_cache)
    if args.suite_file and args.suite:
        raise UsageError("give either a SUITE.yaml file or --suite NAME, not both")
    if args.suite_file:
        suite = load_suite(args.suite_file)
    else:
        name = args.suite or "default"
        if name not in BUILTIN_SUITES:
            raise UsageError(
                f"unknown built-in suite {name!r}; use one of {', '.join(BUILTIN_SUITES)}, "
                "or pass a suite YAML file"
            )
        suite = suite_from_mapping(builtin_suite(name, host_cores()), f"built-in suite {name}")
    # The flags add to what the suite file says; they never take its trust or sandbox away.
    suite.trust_model = suite.trust_model or args.trust_model
    suite.sandbox = suite.sandbox and not args.no_sandbox
    if args.dry_run:
        return _print_plan(suite, cache=not args.no_cache)
    out = Path(args.out) if args.out else None
    return execute_suite(suite, out, progress=not args.no_progress, cache=not args.no_cache)


def _print_plan(suite: Any, *, cache: bool) -> int:
    """What `run` would do and about how long it would take here; nothing is run or written."""
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.runner.plan import cached_preparations, make_plan
    from accelbench.runner.suite import expand, prepare_jobs

    cells, jobs = expand(suite), prepare_jobs(suite)
    cached = cached_preparations(jobs, environment_fingerprint()) if cache else set()
    print(make_plan(cells, jobs, cached_jobs=cached).describe())
    return EXIT_OK


def _optimize(args: argparse.Namespace) -> int:
    from accelbench.runner.suite import suite_from_mapping
    from accelbench.runner.suites import DEFAULT_OPTIMIZATIONS

    model, data = Path(args.model), Path(args.data)
    if not model.exists():
        raise UsageError(f"model {model} does not exist; pass a .keras, .h5 or SavedModel path")
    if model.is_file() and model.suffix not in (".keras", ".h5"):
        raise UsageError(
            f"{model} is not a Keras model (.keras, .h5) or SavedModel folder; to benchmark a "
            "ready artifact as it is, use accelbench bench"
        )
    from accelbench.optimizers.user_models import check_user_data
    from accelbench.runtimes.model_inspect import check_model_safety

    check_model_safety(model, trust=args.trust_model)
    check_user_data(model, data, args.label, trust=args.trust_model, training=False)
    entry = {"path": str(model.resolve()), "data": str(data.resolve())}
    if args.label:
        entry["label"] = args.label
    if args.name:
        entry["name"] = args.name
    suite = suite_from_mapping(
        {
            "name": f"optimize {model.name}",
            "models": [entry],
            "optimizations": args.optimizations or DEFAULT_OPTIMIZATIONS,
            "profiles": args.profile,
            "threads": args.threads,
            "scenarios": args.scenario,
            "preset": args.preset,
            "fine_tune_epochs": args.fine_tune_epochs,
            **trust_settings(args),
        },
        "command line",
    )
    out = Path(args.out) if args.out else None
    return execute_suite(suite, out, progress=not args.no_progress, cache=not args.no_cache)


def _recommend(args: argparse.Namespace) -> int:
    from accelbench.report.tables import load_run
    from accelbench.report.tradeoffs import Budget, answer_budget, points

    if args.max_latency_ms is None and args.min_accuracy is None and args.max_size_mb is None:
        raise UsageError(
            "give a budget: at least one of --max-latency-ms, --min-accuracy, --max-size-mb"
        )
    for flag in ("max_latency_ms", "max_size_mb"):
        value = getattr(args, flag)
        if value is not None and not value > 0:  # NaN included
            raise UsageError(f"--{flag.replace('_', '-')} must be positive, got {value:g}")
    if args.min_accuracy is not None and not 0 <= args.min_accuracy <= 1:
        raise UsageError(f"--min-accuracy is a fraction in [0, 1], got {args.min_accuracy:g}")
    pts = points(load_run(Path(args.run_dir)))
    budget = Budget(args.max_latency_ms, args.min_accuracy, args.max_size_mb)
    lines = answer_budget(pts, budget, profile=args.profile)
    print("\n".join(lines))
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from accelbench.report.compare import (
        check_fail_on,
        compare_runs,
        exit_code,
        latest_pair,
        parse_threshold,
    )

    fail_on = check_fail_on(args.fail_on.split(","))  # before any output
    from accelbench.cli_ab import compare_rerun

    rerun_code = compare_rerun(args, fail_on)  # None without --rerun
    if rerun_code is not None:
        return rerun_code
    base, new = (args.base, args.new) if args.new is not None else latest_pair(args.base)
    comparison = compare_runs(
        base,
        new,
        threshold=parse_threshold(args.threshold),
        alpha=args.alpha,
        allow_different_hardware=args.allow_different_hardware,
        size_policy=args.size_policy,
        store=args.store,
    )
    for warning in comparison.warnings:
        print(f"accelbench: warning: {warning}", file=sys.stderr)
    output = {"table": comparison.to_table, "markdown": comparison.to_markdown,
              "json": comparison.to_json}[args.format]  # fmt: skip
    print(output())
    return exit_code(comparison, fail_on=fail_on)


def _models(args: argparse.Namespace) -> int:
    if args.models_command != "list":
        raise UsageError("say 'accelbench models list'")
    from accelbench.models import list_specs

    for spec in list_specs():
        quality = f"{spec.metric} >= {spec.target}"
        print(f"{spec.name:22} {spec.framework:6} {spec.task:23} {quality:16} {spec.data_source}")
    return EXIT_OK


def _profiles(args: argparse.Namespace) -> int:
    import yaml

    from accelbench import hardware_profiles as hp

    action = args.profiles_command
    if action == "list":
        for prof in hp.list_profiles():
            print(
                f"{prof.name:18} {prof.kind:9} {hp.execution_mode(prof):9} "
                f"{prof.vendor} {prof.model}"
            )
        return EXIT_OK
    if action == "show":
        prof = hp.load_profile(args.name)
        print(yaml.safe_dump(prof.model_dump(mode="json", exclude_none=True), sort_keys=False))
        return EXIT_OK
    if action == "validate":
        prof = hp.validate_profile_file(args.file)
        print(f"{args.file}: valid profile '{prof.name}' ({prof.kind})")
        return EXIT_OK
    if action == "detect":
        prof = hp.detect_host()
        print(yaml.safe_dump(prof.model_dump(mode="json", exclude_none=True), sort_keys=False))
        return EXIT_OK
    if action == "calibrate":
        from accelbench.hardware_profiles.calibrate import calibrate

        cal = calibrate(seconds=args.seconds)
        data = cal.model_dump(mode="json") if hasattr(cal, "model_dump") else vars(cal)
        print(yaml.safe_dump(data, sort_keys=False))
        return EXIT_OK
    raise UsageError("say 'accelbench profiles list|show|validate|detect|calibrate'")
