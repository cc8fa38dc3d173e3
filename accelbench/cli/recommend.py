"""`accelbench recommend`: what in a run meets a latency, quality and size budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from accelbench.cli.base import EXIT_OK, Command
from accelbench.errors import UsageError


class Recommend(Command):
    name = "recommend"
    help = "what in a run meets a latency/quality/size budget"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir")
        parser.add_argument("--max-latency-ms", type=float, default=None)
        parser.add_argument(
            "--min-accuracy",
            type=float,
            default=None,
            help="minimum quality (accuracy, or AUC for the anomaly detector)",
        )
        parser.add_argument("--max-size-mb", type=float, default=None)
        parser.add_argument("--profile", default=None, help="only this profile")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
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
        print("\n".join(answer_budget(pts, budget, profile=args.profile)))
        return EXIT_OK
