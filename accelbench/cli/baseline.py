"""`accelbench baseline save|list`: stored baselines, what compare and ab read as baseline:NAME."""

from __future__ import annotations

import argparse
import sys

from accelbench.cli.base import EXIT_OK, Command
from accelbench.errors import UsageError


class Baseline(Command):
    name = "baseline"
    help = "save and list stored baselines for compare"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        # A parser's subparsers are of its own class: the CLI's, which turns errors into exit 2.
        actions = parser.add_subparsers(dest="baseline_command", metavar="ACTION")
        save = actions.add_parser(
            "save",
            help="store a run's records as baseline NAME",
            description="Copies what compare needs (metrics, raw latencies, sha256, environment, "
            "per-example accuracy) into STORE/NAME.jsonl, and each record's artifact into "
            "STORE/artifacts/SHA256/ (stored once per content; compare --rerun and ab time them "
            "again from there); STORE is --store, else $ACCELBENCH_BASELINE_STORE, else "
            ".accelbench/baselines.",
        )
        save.add_argument("run_dir", help="run folder")
        save.add_argument("--name", required=True, help="baseline name, e.g. main")
        save.add_argument("--store", default=None, help="baseline store folder")
        save.add_argument("--force", action="store_true", help="replace an existing baseline")
        save.add_argument(
            "--no-artifacts",
            action="store_true",
            help="store the records only (compare works, compare --rerun and ab cannot re-measure)",
        )
        listing = actions.add_parser("list", help="list the stored baselines")
        listing.add_argument("--store", default=None, help="baseline store folder")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.baseline_command == "save":
            return _save(args)
        if args.baseline_command == "list":
            return _list(args)
        raise UsageError(
            "say 'accelbench baseline save RUN_DIR --name NAME' or 'accelbench baseline list'"
        )


def _save(args: argparse.Namespace) -> int:
    from accelbench.report.baseline_save import save_baseline
    from accelbench.report.baselines import ARTIFACTS_DIR, store_dir

    saved = save_baseline(
        args.run_dir,
        args.name,
        store=args.store,
        force=args.force,
        artifacts=not args.no_artifacts,
    )
    print(f"saved baseline {args.name!r} ({saved.cells} cells) to {saved.path}")
    if not args.no_artifacts:
        if saved.new_artifacts == saved.artifacts:
            copied = "all copied now"
        elif saved.new_artifacts == 0:
            copied = "all already there"
        else:
            copied = f"{saved.new_artifacts} copied now, {_size(saved.new_bytes)}; the others "
            copied += "already there"
        print(
            f"artifacts: {saved.artifacts} stored in {store_dir(args.store) / ARTIFACTS_DIR}, "
            f"{_size(saved.artifact_bytes)} ({copied})"
        )
    for cell_id, reason in saved.not_stored:
        print(f"accelbench: warning: {cell_id}: artifact not stored: {reason}", file=sys.stderr)
    print(
        f"compare with 'accelbench compare baseline:{args.name} RUN_DIR' (add --rerun to time "
        "both sides' artifacts again, paired)"
    )
    return EXIT_OK


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def _list(args: argparse.Namespace) -> int:
    from accelbench.report.baselines import list_baselines, store_dir
    from accelbench.report.compare import text_table

    found = list_baselines(args.store)
    if not found:
        print(f"no baselines in {store_dir(args.store)}; save one with 'accelbench baseline save'")
        return EXIT_OK
    rows = [
        [
            b["name"],
            str(b.get("run_id", "")),
            str(b.get("saved_at", "")),
            str(b.get("cells", "")),
            b["path"] if "error" not in b else f"damaged: {b['error']}",
        ]
        for b in found
    ]
    print(text_table(["name", "run", "saved", "cells", "file"], rows))
    return EXIT_OK
