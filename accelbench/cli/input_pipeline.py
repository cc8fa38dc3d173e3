"""`accelbench input-pipeline`: tf.data throughput per data format and pipeline setting."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accelbench.cli.base import Command, execute_suite
from accelbench.errors import UsageError

DEFAULT_MODEL = "digits_cnn"
# The flags that are the suite's input_pipeline options, under the same names.
OPTIONS = ("formats", "pipelines", "batch_size", "examples", "min_seconds", "check_training")


class InputPipeline(Command):
    name = "input-pipeline"
    help = "tf.data throughput per data format and pipeline setting; is training input-bound?"
    description = (
        "Write the model's data in each format, read it through each tf.data "
        "pipeline setting, and report examples/s, MB/s, the speed-up over the naive pipeline "
        "and where the time goes; with --check-training, whether the model's training step "
        "would wait for its input."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.benchmarks.input_formats import FORMATS
        from accelbench.benchmarks.input_pipeline import (
            DEFAULT_EXAMPLES,
            DEFAULT_MIN_SECONDS,
            PIPELINES,
        )

        parser.add_argument(
            "model",
            nargs="?",
            default=DEFAULT_MODEL,
            help=f"a reference model (default {DEFAULT_MODEL}; see accelbench models list)",
        )
        parser.add_argument(
            "--data",
            default=None,
            help="your data for the model (.npz, .csv, .parquet, .tfrecord or an image folder) "
            "instead of the built-in data",
        )
        parser.add_argument("--formats", default=None, help=f"comma-separated: {','.join(FORMATS)}")
        parser.add_argument(
            "--pipelines", default=None, help=f"comma-separated: {','.join(PIPELINES)}"
        )
        parser.add_argument("--batch-size", type=int, default=None, help="default: the model's own")
        parser.add_argument(
            "--examples",
            type=int,
            default=None,
            help=f"examples written per format and read per epoch (default {DEFAULT_EXAMPLES})",
        )
        parser.add_argument(
            "--threads", type=int, default=None, help="threads (default: all cores)"
        )
        parser.add_argument(
            "--min-seconds",
            type=float,
            default=None,
            help=f"measuring time per configuration, after a warm-up epoch (default "
            f"{DEFAULT_MIN_SECONDS}); longer is steadier",
        )
        parser.add_argument(
            "--check-training",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="also measure the training step and say whether training is input-bound "
            "(default: on)",
        )
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.benchmarks.input_pipeline import check_options
        from accelbench.models import get_spec
        from accelbench.runner.suite import suite_from_mapping
        from accelbench.runner.sweep import new_run_dir

        spec = get_spec(args.model)  # an unknown name lists the reference models
        options: dict[str, Any] = {}
        for key in OPTIONS:
            value = getattr(args, key)
            if value is not None:
                options[key] = value
        options = check_options(options)
        if args.threads is not None and args.threads < 1:
            raise UsageError(f"--threads must be a positive integer, got {args.threads}")
        entry: dict[str, Any] = {"name": spec.name}
        if args.data:
            data = Path(args.data)
            check_data(spec, data)
            entry["data"] = str(data.resolve())
        suite = suite_from_mapping(
            {
                "name": f"input-pipeline {spec.name}",
                "models": [entry],
                "profiles": ["host"],
                "threads": [args.threads] if args.threads else None,
                "scenarios": ["input-pipeline"],
                "input_pipeline": options,
            },
            "command line",
        )
        run_dir = Path(args.out) if args.out else new_run_dir()
        code = execute_suite(suite, run_dir, progress=not args.no_progress)
        if (run_dir / "records.jsonl").is_file():
            from accelbench.records import read_records

            print(format_tables(read_records(run_dir)))
        return code


def check_data(spec: Any, path: Path) -> None:
    """Read the user's data once, before anything is written: a problem is one UsageError line."""
    if not path.exists():
        raise UsageError(f"data file {path} does not exist; pass an existing dataset path")
    spec.load_data(str(path))  # the loaders name the file and any mismatch with the model


def format_tables(records: list[dict[str, Any]]) -> str:
    """One table per format (configuration, examples/s, MB/s, speed-up), then the input check."""
    from accelbench.benchmarks.input_pipeline import STAGES

    lines: list[str] = []
    by_format: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        settings = r.get("settings") or {}
        if r.get("scenario") == "input-pipeline" and settings.get("format"):
            if r["cell_id"].endswith(".input_bound"):
                continue
            by_format.setdefault(settings["format"], []).append(r)
    for fmt, rows in by_format.items():
        lines.append("")
        lines.append(f"{fmt}")
        lines.append(f"  {'configuration':18} {'examples/s':>12} {'MB/s':>9} {'vs naive':>9}")
        fastest = None
        for r in rows:
            settings, metrics = r["settings"], r.get("metrics") or {}
            if r["status"] != "ok":
                name = settings.get("pipeline") or "(all)"
                lines.append(f"  {name:18} {r['status']}: {r.get('error')}")
                continue
            value = {
                k: (metrics.get(k) or {}).get("value")
                for k in ("examples_per_s", "mb_per_s", "speedup_vs_naive")
            }
            mark = " *" if settings.get("fastest") else ""
            lines.append(
                f"  {settings['pipeline']:18} {value['examples_per_s']:>12,.0f} "
                f"{value['mb_per_s']:>9.2f} {value['speedup_vs_naive'] or 0:>8.2f}x{mark}"
            )
            if settings.get("fastest"):
                fastest = (settings["pipeline"], value["speedup_vs_naive"])
            stages = settings.get("stage_ms_per_example")
            if stages:
                spent = ", ".join(f"{k} {stages[k] * 1e3:.0f} us" for k in STAGES if k in stages)
                lines.append(f"  {'':18} naive, per example: {spent}")
        if fastest:
            lines.append(f"  fastest: {fastest[0]}, {fastest[1] or 0:.2f}x the naive pipeline")
    for r in records:
        if r.get("scenario") == "input-pipeline" and r["cell_id"].endswith(".input_bound"):
            lines.append("")
            lines.append(input_bound_line(r))
    return "\n".join(lines)


def input_bound_line(record: dict[str, Any]) -> str:
    """The input-bound verdict of an ``input_bound`` record, in one sentence."""
    if record["status"] != "ok":
        return f"input-bound check: {record['status']}: {record.get('error')}"
    s, m = record["settings"], record["metrics"]
    step = m["train_step_examples_per_s"]["value"]
    naive = m["naive_pipeline_examples_per_s"]["value"]
    factor = m["input_bound_factor"]["value"]
    head = (
        f"training step: {step:,.0f} examples/s; naive {s['format']} pipeline: {naive:,.0f} "
        f"examples/s -> "
    )
    if not s["input_bound"]:
        return head + f"not input-bound (the step needs {factor:.2f}x of what naive delivers)"
    fix = (
        f"the '{s['fixed_by']}' pipeline is enough"
        if s["fixed_by"]
        else "no configuration measured keeps up"
    )
    return head + f"INPUT-BOUND by {factor:.2f}x; {fix}"
