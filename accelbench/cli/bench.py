"""`accelbench bench`: one model artifact benchmarked as a one-model suite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accelbench.cli.base import (
    Command,
    add_cluster_argument,
    add_model_trust_arguments,
    add_scenario_argument,
    apply_cluster,
    comma_list,
    execute_suite,
    resume_run,
    trust_settings,
)
from accelbench.errors import UsageError


class Bench(Command):
    name = "bench"
    help = "benchmark one model (.tflite, SavedModel, .keras, .jaxexport)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.runtimes.registry import names_text as runtime_names_text

        parser.add_argument("model", nargs="?", help="model artifact; omit with --resume")
        parser.add_argument(
            "--profile",
            type=comma_list("profile"),
            default=["host"],
            help="comma-separated profile names or YAML paths (default: host)",
        )
        parser.add_argument(
            "--threads",
            type=comma_list("threads", int),
            default=None,
            help="comma-separated thread counts (default: all cores / the device's cores)",
        )
        add_scenario_argument(parser)
        parser.add_argument("--preset", default="quick", help="quick (default), standard or mlperf")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            metavar="N",
            help="offline and server: up to N queued samples per runtime call, for a model with "
            "a dynamic batch dimension (default: one sample per call; a fixed batch dimension B "
            "is always B); single-stream and multi-stream keep one sample per query",
        )
        parser.add_argument("--runtime", default=None, help=runtime_names_text())
        parser.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
        parser.add_argument("--inputs", default=None, help=".npy/.npz file of real inputs")
        parser.add_argument(
            "--name", default=None, help="model name in records (default: file stem)"
        )
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="seconds per cell (default 600)"
        )
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        parser.add_argument(
            "--resume",
            default=None,
            metavar="RUN_DIR",
            help="run only the cells of RUN_DIR not yet recorded",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_model_trust_arguments(parser)
        add_cluster_argument(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        apply_cluster(args)
        from accelbench.runner.suite import suite_from_mapping
        from accelbench.runtimes.validate import check_artifact

        if args.resume:
            if args.model:
                raise UsageError(
                    f"--resume continues {args.resume} with the models it was started with; "
                    f"drop {args.model}, or benchmark it into a new folder with --out"
                )
            return resume_run(Path(args.resume), progress=not args.no_progress)
        if not args.model:
            raise UsageError("name a model file to benchmark, or --resume RUN_DIR")
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
        # execute_suite checks the batch size against the model (runner.suite.check_suite).
        out = Path(args.out) if args.out else None
        return execute_suite(suite, out, progress=not args.no_progress)
