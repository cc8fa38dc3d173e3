"""`accelbench optimize`: your Keras model made into every optimization and each benchmarked."""

from __future__ import annotations

import argparse
from pathlib import Path

from accelbench.cli.base import (
    Command,
    add_cluster_argument,
    add_data_arguments,
    add_model_trust_arguments,
    add_no_cache_argument,
    add_scenario_argument,
    apply_cluster,
    comma_list,
    execute_suite,
    trust_settings,
)
from accelbench.errors import UsageError


class Optimize(Command):
    name = "optimize"
    help = "optimize your Keras model every way and benchmark each artifact"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help=".keras, .h5 or SavedModel folder")
        add_data_arguments(parser, required=True)
        parser.add_argument(
            "--optimizations",
            type=comma_list("optimizations"),
            default=None,
            help="comma-separated, e.g. fp32,int8,prune50+int8 (default: the default suite's)",
        )
        parser.add_argument("--profile", type=comma_list("profile"), default=["host"])
        parser.add_argument("--threads", type=comma_list("threads", int), default=None)
        add_scenario_argument(parser)
        parser.add_argument("--preset", default="quick")
        parser.add_argument("--fine-tune-epochs", type=int, default=2)
        parser.add_argument(
            "--name", default=None, help="model name in records (default: file stem)"
        )
        parser.add_argument("--out", default=None)
        parser.add_argument("--no-progress", action="store_true")
        add_no_cache_argument(parser)
        add_model_trust_arguments(parser)
        add_cluster_argument(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        apply_cluster(args)
        from accelbench.optimizers.user_models import check_user_data
        from accelbench.runner.suite import suite_from_mapping
        from accelbench.runner.suites import default_optimizations
        from accelbench.runtimes.model_inspect import check_model_safety

        model, data = Path(args.model), Path(args.data)
        if not model.exists():
            raise UsageError(f"model {model} does not exist; pass a .keras, .h5 or SavedModel path")
        if model.is_file() and model.suffix not in (".keras", ".h5"):
            raise UsageError(
                f"{model} is not a Keras model (.keras, .h5) or SavedModel folder; to benchmark "
                "a ready artifact as it is, use accelbench bench"
            )
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
                "optimizations": args.optimizations or default_optimizations(),
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
