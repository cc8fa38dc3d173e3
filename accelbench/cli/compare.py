"""`accelbench compare`: two runs, baselines or pytest-benchmark files; exit 1 on a regression."""

from __future__ import annotations

import argparse
import sys

from accelbench.cli.base import Command


class Compare(Command):
    name = "compare"
    help = "compare two runs, baselines or pytest-benchmark files; exit 1 on regression"
    description = (
        "BASE and NEW are each a run folder, baseline:NAME (or a baseline .jsonl "
        "file), a pytest-benchmark JSON file, or a pytest-benchmark storage folder (its latest "
        "file; given alone, its two latest files are compared). Exit 0: no regression, 1: a "
        "regression, 2: usage or input error, 3: internal error. Where both runs timed the "
        "machine-speed canary and it moved by more than half the threshold, a latency verdict "
        "must also hold relative to the canary's ratio, else it is inconclusive. With --rerun "
        "(two runs or baselines), the time verdicts come instead from re-measuring both sides' "
        "artifacts now, paired, as 'accelbench ab BASE NEW' does."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.cli.ab import add_rerun_arguments

        parser.add_argument(
            "base", help="run folder, baseline:NAME, baseline file or pytest-benchmark"
        )
        parser.add_argument("new", nargs="?", default=None, help="the same kinds as BASE")
        parser.add_argument(
            "--threshold", default="5%", help="smallest relative change that counts"
        )
        parser.add_argument(
            "--alpha", type=float, default=0.01, help="significance level (after FDR)"
        )
        parser.add_argument("--fail-on", default="regressed", help="verdicts that make the exit 1")
        parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
        parser.add_argument("--allow-different-hardware", action="store_true")
        parser.add_argument(
            "--size-policy",
            choices=("exact", "threshold"),
            default="exact",
            help="exact: one byte larger is regressed (default); threshold: only past --threshold",
        )
        parser.add_argument(
            "--store",
            default=None,
            help="baseline store for baseline:NAME (default: see baseline)",
        )
        add_rerun_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.cli.ab import compare_rerun
        from accelbench.report.compare import (
            check_fail_on,
            compare_runs,
            exit_code,
            latest_pair,
            parse_threshold,
        )

        fail_on = check_fail_on(args.fail_on.split(","))  # before any output
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
        output = {
            "table": comparison.to_table,
            "markdown": comparison.to_markdown,
            "json": comparison.to_json,
        }[args.format]
        print(output())
        return exit_code(comparison, fail_on=fail_on)
