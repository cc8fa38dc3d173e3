"""`accelbench project`: what a model would do on a device, without measuring it on this host."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from accelbench.cli.base import EXIT_OK, Command, comma_list
from accelbench.errors import UsageError


class Project(Command):
    name = "project"
    help = "project a model's latency onto device profiles, or check projections (--validate)"
    description = (
        "Project each MODEL onto each --profile with the per-op device model of the profile's "
        "projection block: latency, its error band, what bounds it (compute, memory, overhead, "
        "link) and the ops that take longest. Nothing is run on this host. A MODEL is a .tflite, "
        "a reference model's name (built untrained, since latency does not depend on trained "
        "weights, converted at --precision and cached) or a Keras model (.keras, .h5, "
        "SavedModel folder; converted at --precision). "
        "--validate instead projects the published rows of the validation table (building and "
        "caching their Keras Applications models on first use) and prints projected against "
        "published, the ratio per row, and the worst and median error per device."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "models",
            nargs="*",
            metavar="MODEL",
            help=".tflite files, reference model names (accelbench models list), or Keras models "
            "(.keras, .h5, SavedModel folder)",
        )
        parser.add_argument(
            "--precision",
            choices=("fp32", "int8"),
            default="fp32",
            help="what a reference or Keras model is converted to (default fp32; int8: full "
            "integer, calibrated on random inputs); a .tflite is projected as it is",
        )
        parser.add_argument(
            "--profile",
            type=comma_list("profile"),
            default=None,
            help="profiles to project onto, comma-separated (default: every built-in profile "
            "with a projection block)",
        )
        parser.add_argument(
            "--scenario",
            choices=("single-stream", "offline"),
            default="single-stream",
            help="single-stream: one inference's latency (default); offline: a batched call's "
            "throughput",
        )
        parser.add_argument(
            "--runtime", default=None, help="the runtime calling the model, e.g. jax"
        )
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.add_argument(
            "--validate",
            action="store_true",
            help="check the projection against the published rows of the validation table",
        )
        parser.add_argument(
            "--table",
            default=None,
            help="with --validate: a validation table YAML (default: the one shipped)",
        )
        parser.add_argument(
            "--no-build",
            action="store_true",
            help="with --validate: build nothing; a row whose model is not cached here uses the "
            "per-op cost table shipped with accelbench, or is reported as not built",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.validate:
            if args.models:
                raise UsageError("--validate takes no MODEL; drop the model files or --validate")
            return _validate(args)
        if not args.models:
            raise UsageError(
                "give at least one MODEL (.tflite file, reference model name or Keras model), "
                "or --validate"
            )
        return _project(args)


def _profiles(names: list[str] | None) -> list[Any]:
    from accelbench.hardware_profiles import builtin_names, load_profile

    if names:
        return [load_profile(name) for name in names]
    loaded = (load_profile(name) for name in builtin_names())
    return [profile for profile in loaded if profile.projection is not None]


def _project(args: argparse.Namespace) -> int:
    from accelbench.hardware_profiles.emulation import check_artifact_supported
    from accelbench.hardware_profiles.pricing import hourly_price, usd_per_million
    from accelbench.hardware_profiles.projection import (
        OpTable,
        band,
        band_text,
        project,
        runtime_text,
    )
    from accelbench.optimizers.projected_models import tflite_of
    from accelbench.runtimes.tflite_cost import analyze_tflite

    profiles = _profiles(args.profile)
    tables = []
    for model in args.models:
        with tflite_of(model, args.precision) as (path, label):
            cost = analyze_tflite(path)
        tables.append((dataclasses.replace(OpTable.from_graph_cost(cost), model=label), cost))
    rows = []
    for table, cost in tables:
        for profile in profiles:
            refusal = check_artifact_supported(profile, cost)
            if refusal:
                rows.append(
                    {
                        "model": table.model,
                        "profile": profile.name,
                        "scenario": args.scenario,
                        "projected_latency_ms": None,
                        "band": None,
                        "refused": refusal,
                    }
                )
                continue
            result = project(table, profile, scenario=args.scenario, runtime=args.runtime)
            price, price_basis = hourly_price(profile.model_dump(mode="json", exclude_none=True))
            rows.append(
                {
                    "model": table.model,
                    "profile": profile.name,
                    "scenario": args.scenario,
                    "projected_latency_ms": result.latency_ms,
                    "samples_per_s": result.samples_per_s,
                    "batch": result.batch,
                    "band": band(result.latency_ms, profile),
                    "bound": result.bound,
                    "top_ops": [{"op": op, "ms": ms} for op, ms in result.top_ops()],
                    "runtime_modelled": runtime_text(profile, args.runtime),
                    "notes": result.notes,
                    # From the projected throughput, the device busy the whole hour.
                    "usd_per_million_inferences": (
                        usd_per_million(result.samples_per_s, price) if price else None
                    ),
                    "price_basis": price_basis or "the profile states no price",
                }
            )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("model", "profile", "projected", "$ per M inferences", "bound", "top ops", "band")
    lines = [
        (
            row["model"],
            row["profile"],
            _figure(row),
            _cost(row),
            row["bound"],
            ", ".join(f"{op['op']} {op['ms']:.3g}" for op in row["top_ops"]),
            band_text(row["band"]),
        )
        if row["band"]
        else (row["model"], row["profile"], "refused", "", "", "", row["refused"])
        for row in rows
    ]
    _print_table(header, lines)
    return EXIT_OK


def _cost(row: dict[str, Any]) -> str:
    """US$ per million inferences at the projected rate, or n/a (the JSON says why)."""
    usd = row["usd_per_million_inferences"]
    if usd is None:
        unknown = row["price_basis"].startswith("unknown")
        return "n/a: price unknown" if unknown else "n/a: no price"
    return f"{usd:.3g} (projected)"


def _figure(row: dict[str, Any]) -> str:
    if row["scenario"] == "offline":
        return f"{row['samples_per_s']:,.0f}/s"
    return f"{row['projected_latency_ms']:.4g} ms"


def _validate(args: argparse.Namespace) -> int:
    from accelbench.hardware_profiles import load_profile
    from accelbench.hardware_profiles.projection import (
        OpTable,
        heldout_ratios,
        projected_figure,
        shipped_cost_tables,
    )
    from accelbench.hardware_profiles.validation import (
        VALIDATION_FILE,
        load_rows,
        ratio_error,
        summarise,
    )
    from accelbench.optimizers.validation_models import cached_cost_table, cost_table_path

    path = Path(args.table) if args.table else VALIDATION_FILE
    if not path.is_file():
        raise UsageError(f"validation table '{path}' does not exist; check the path")
    rows = load_rows(path)
    lines = []
    errors: dict[str, list[float]] = {}
    held: dict[str, list[float]] = {}
    left_out = heldout_ratios() if path == VALIDATION_FILE else {}
    shipped = shipped_cost_tables() if args.no_build else {}
    from_shipped = 0
    for row in rows:
        profile = load_profile(row.profile)
        if not args.no_build and not cost_table_path(row.key).is_file():
            print(f"building {row.key} (first use; cached after)", file=sys.stderr, flush=True)
        table = cached_cost_table(row, build=not args.no_build)
        if table is None and row.key in shipped:
            table, from_shipped = shipped[row.key], from_shipped + 1
        if table is None:
            lines.append((row.profile, row.label(), row.scenario, "not built", "", "", "", row.url))
            continue
        figure = projected_figure(row, OpTable.from_dict(table), profile)
        ratio = figure / row.published
        errors.setdefault(row.profile, []).append(ratio_error(ratio))
        lines.append(
            (
                row.profile,
                row.label(),
                row.scenario,
                _amount(figure, row.unit),
                _amount(row.published, row.unit),
                f"{ratio:.2f}",
                f"{left_out[row.row_id]:.2f}" if row.row_id in left_out else "-",
                row.url,
            )
        )
        if row.row_id in left_out:
            held.setdefault(row.profile, []).append(ratio_error(left_out[row.row_id]))
    header = ("profile", "model", "scenario", "projected", "published", "ratio", "left out")
    _print_table((*header, "source"), lines)
    print()
    summary = []
    for name, errs in errors.items():
        worst_held = f"{max(held[name]):.2f}×" if held.get(name) else "-"
        stats = summarise(errs)
        summary.append(
            (name, str(len(errs)), f"{stats['worst']:.2f}×", f"{stats['median']:.2f}×", worst_held)
        )
    _print_table(("profile", "rows", "worst error", "median error", "worst left out"), summary)
    print(
        "\nratio: projected / published; left out: the ratio with the profile's parameters "
        "fitted without that row (scripts/fit_projection.py)"
    )
    if from_shipped:
        print(
            f"{from_shipped} of {len(rows)} rows used the per-op cost tables shipped with "
            "accelbench (not built here); drop --no-build to build their models here"
        )
    return EXIT_OK


def _amount(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if unit == "samples/s" else f"{value:.4g} {unit}"


def _print_table(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    for line in (header, *lines):
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)
            ).rstrip()
        )
