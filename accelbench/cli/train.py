"""`accelbench train`: the training benchmark of one model, run as a suite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accelbench.cli.base import (
    Command,
    add_data_arguments,
    add_model_trust_arguments,
    comma_list,
    execute_suite,
    trust_settings,
)
from accelbench.errors import UsageError


class Train(Command):
    name = "train"
    help = (
        "training benchmark: step time, examples/s, time to target over seeds; "
        "mixed precision, XLA, distributed"
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "model", help="a reference model name (accelbench models list) or a .keras/.h5"
        )
        add_data_arguments(parser, required=False)
        parser.add_argument(
            "--seeds", type=int, default=None, help="runs per configuration (default 3)"
        )
        parser.add_argument("--epochs", type=int, default=None, help="epoch budget per run")
        parser.add_argument("--batch-size", type=int, default=None, help="global batch size")
        parser.add_argument(
            "--target", type=float, default=None, help="quality target (default: model's)"
        )
        parser.add_argument(
            "--precision",
            type=comma_list("precision"),
            default=None,
            help="fp32, mixed_bfloat16, mixed_float16 (default fp32)",
        )
        parser.add_argument(
            "--xla", type=comma_list("xla"), default=None, help="off, on (default off)"
        )
        parser.add_argument(
            "--strategy",
            type=comma_list("strategy"),
            default=None,
            help="none, mirrored, multiworker (default none)",
        )
        parser.add_argument(
            "--devices",
            type=comma_list("devices", int),
            default=None,
            help="device counts, e.g. 1,2 (default 1, or 1,2 with a distributed strategy)",
        )
        parser.add_argument(
            "--framework",
            type=comma_list("framework"),
            default=None,
            help="tensorflow, jax (default tf)",
        )
        parser.add_argument(
            "--timeout", type=float, default=1800.0, help="seconds for the whole cell"
        )
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_model_trust_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.runner.suite import suite_from_mapping
        from accelbench.runner.sweep import new_run_dir

        entry = _model_entry(
            args.model, args.data, args.target, trust=args.trust_model, label=args.label
        )
        options: dict[str, Any] = {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "target": args.target,
            "precisions": args.precision,
            "xla": args.xla,
            "strategies": args.strategy,
            "devices": args.devices,
            "frameworks": args.framework,
        }
        suite = suite_from_mapping(
            {
                "name": f"train {entry.get('name') or Path(entry['path']).stem}",
                "models": [entry],
                "scenarios": ["training"],
                "training": {k: v for k, v in options.items() if v is not None},
                "timeout_s": args.timeout,
                **trust_settings(args),
            },
            "command line",
        )
        run_dir = Path(args.out) if args.out else new_run_dir()
        code = execute_suite(suite, run_dir, progress=not args.no_progress)
        if (run_dir / "records.jsonl").is_file():
            from accelbench.records import read_records

            print_training_table(read_records(run_dir))
        return code


def _model_entry(
    model: str,
    data: str | None,
    target: float | None,
    *,
    trust: bool = False,
    label: str | None = None,
) -> dict[str, Any]:
    """The suite entry for MODEL, its data checked against it now, before anything is written.

    A trusted model (--trust-model) is not loaded here, outside the sandbox: its data is checked
    alone, and its worker says what does not fit."""
    path = Path(model)
    if path.suffix in (".keras", ".h5") or path.is_dir():
        if not path.exists():
            raise UsageError(f"model {path} does not exist; pass a .keras or .h5 file")
        if data is None:
            raise UsageError(
                f"training {path.name} needs data: give --data (a .npz, .csv, .parquet, "
                ".tfrecord or an image folder)"
            )
        if target is None:
            raise UsageError(
                f"{path.name} has no quality target to train to; give one with --target 0.9"
            )
        from accelbench.optimizers.user_models import check_user_data
        from accelbench.runtimes.model_inspect import check_model_safety

        check_model_safety(path, trust=trust)
        check_user_data(path, Path(data), label, trust=trust, training=True)
        entry = {"path": str(path.resolve()), "data": str(Path(data).resolve())}
        if label:
            entry["label"] = label
        return entry
    from accelbench.models import get_spec
    from accelbench.models.jax_models import BASES

    spec = get_spec(BASES.get(model, model))  # an unknown name lists the known ones
    if label:
        raise UsageError(
            f"--label is for your own model's data; {spec.name}'s data names its label "
            "column (or key) 'label', so leave --label out"
        )
    entry: dict[str, Any] = {"name": spec.name}
    if data is not None:
        spec.load_data(data)  # missing, empty, wrong format or schema: one UsageError line
        entry["data"] = str(Path(data).resolve())
    return entry


def training_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the training table: one row per configuration record."""
    # fmt: skip below: 9 names packed as a paragraph, not one per line.
    header = ["configuration", "status", "step ms", "examples/s", "compile s", "to target s",
              "runs at target", "scaling eff", "error"]  # fmt: skip
    rows = []
    for r in records:
        settings = r.get("settings") or {}
        if r.get("scenario") != "training" or "framework" not in settings:
            continue
        m = {k: (v or {}).get("value") for k, v in (r.get("metrics") or {}).items()}
        agg = settings.get("aggregation") or {}
        reached = f"{agg['runs_reached_target']}/{agg['runs']}" if agg else "-"
        key = r["cell_id"].removeprefix((r.get("parent_cell_id") or "") + ".")
        rows.append(
            [
                key,
                r["status"],
                _num(m.get("step_time_ms")),
                _num(m.get("examples_per_s")),
                _num(m.get("compile_s")),
                _num(m.get("time_to_target_s")),
                reached,
                _num(m.get("scaling_efficiency")),
                str(r.get("error") or ""),
            ]
        )
    return header, rows


def print_training_table(records: list[dict[str, Any]]) -> None:
    """Print the training configurations of a run, one aligned row each (nothing if none)."""
    header, rows = training_rows(records)
    if not rows:
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
