"""`accelbench run`: a suite (the default, a built-in one or a YAML file) into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accelbench.cli.base import (
    EXIT_OK,
    Command,
    add_cluster_argument,
    add_model_trust_arguments,
    add_no_cache_argument,
    apply_cluster,
    execute_suite,
    resume_run,
)
from accelbench.errors import UsageError


class Run(Command):
    name = "run"
    help = "run a suite: the default suite, --suite full, or your SUITE.yaml"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "suite_file",
            nargs="?",
            metavar="SUITE.yaml",
            help="suite YAML (default: the built-in default suite)",
        )
        parser.add_argument("--suite", default=None, help="a built-in suite: default, full or ci")
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        parser.add_argument("--resume", default=None, metavar="RUN_DIR")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the plan (cells by model, optimization, profile, scenario) and the "
            "estimated wall time on this machine; run and write nothing",
        )
        add_no_cache_argument(parser)
        add_model_trust_arguments(parser)
        add_cluster_argument(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        apply_cluster(args)
        from accelbench.runner.suite import host_cores, load_suite, suite_from_mapping
        from accelbench.runner.suites import BUILTIN_SUITES, builtin_suite

        if args.resume:
            if args.dry_run:
                raise UsageError(
                    "--dry-run plans a new run; drop --resume (a resumed run prints its plan of "
                    "the cells left as its first line)"
                )
            if args.suite_file or args.suite:
                raise UsageError(
                    f"--resume continues {args.resume} with the suite it was started with; drop "
                    f"{args.suite_file or '--suite ' + args.suite}, or start a new run with --out"
                )
            return resume_run(
                Path(args.resume), progress=not args.no_progress, cache=not args.no_cache
            )
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
        # Both paths expand the suite first, which checks its models (runner.suite.check_suite).
        if args.dry_run:
            return _print_plan(suite, cache=not args.no_cache)
        out = Path(args.out) if args.out else None
        return execute_suite(suite, out, progress=not args.no_progress, cache=not args.no_cache)


def _print_plan(suite: Any, *, cache: bool) -> int:
    """What `run` would do and about how long it would take here; nothing is run or written."""
    from accelbench.runner.plan import plan_suite

    print(plan_suite(suite, cache=cache).describe())
    return EXIT_OK
