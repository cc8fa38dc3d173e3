"""`accelbench history`: trends and change points of metrics across many runs."""

from __future__ import annotations

import argparse

from accelbench.cli.base import EXIT_OK, Command
from accelbench.errors import UsageError


class History(Command):
    name = "history"
    help = "trends and change points of metrics across many runs"
    description = (
        "Reads every run folder under each PATH (a results folder, a run folder, a "
        "baseline file or a baseline store), orders the runs by time and, per cell and metric, "
        "finds change points by E-divisive means with a permutation test. A shift needs "
        "--min-runs runs on each side to be found."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "paths", nargs="+", metavar="PATH", help="results folder(s) or baseline store"
        )
        parser.add_argument(
            "--metric",
            default=None,
            help="comma-separated metrics (default: latency_p50_ms,qps,accuracy,model_bytes)",
        )
        parser.add_argument("--cell", default=None, help="only cells whose id matches this glob")
        parser.add_argument(
            "--html", default=None, metavar="FILE", help="write the trend plots here"
        )
        parser.add_argument(
            "--alpha", type=float, default=0.01, help="permutation test level (0.01)"
        )
        parser.add_argument("--min-runs", type=int, default=3, help="shortest segment, in runs (3)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.report.history import (
            build_trends,
            detect_change_points,
            history_text,
            load_runs,
            write_html,
        )

        if not 0.0 < args.alpha < 1.0:
            raise UsageError(f"--alpha {args.alpha} is not between 0 and 1; give a level like 0.01")
        if args.min_runs < 2:
            raise UsageError(f"--min-runs {args.min_runs} is too small; give 2 or more")
        metrics = [m.strip() for m in args.metric.split(",") if m.strip()] if args.metric else None
        runs = load_runs(args.paths)
        trends = build_trends(runs, metrics, args.cell)
        detect_change_points(trends, sig_level=args.alpha, min_size=args.min_runs)
        print(history_text(trends, runs))
        if args.html:
            print(f"wrote {write_html(trends, runs, args.html)}")
        return EXIT_OK
