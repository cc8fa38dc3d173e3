"""The `history` and `baseline` commands: trends and change points across runs, stored baselines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from accelbench.errors import UsageError


def register(sub: Any) -> None:
    """Add `history` and `baseline save|list` to the CLI's subparsers."""
    h = sub.add_parser(
        "history",
        help="trends and change points of metrics across many runs",
        description="Reads every run folder under each PATH (a results folder, a run folder, a "
        "baseline file or a baseline store), orders the runs by time and, per cell and metric, "
        "finds change points by E-divisive means with a permutation test. A shift needs "
        "--min-runs runs on each side to be found.",
    )
    h.add_argument("paths", nargs="+", metavar="PATH", help="results folder(s) or baseline store")
    h.add_argument(
        "--metric",
        default=None,
        help="comma-separated metrics (default: latency_p50_ms,qps,accuracy,model_bytes)",
    )
    h.add_argument("--cell", default=None, help="only cells whose id matches this glob")
    h.add_argument("--html", default=None, metavar="FILE", help="write the trend plots here")
    h.add_argument("--alpha", type=float, default=0.01, help="permutation test level (0.01)")
    h.add_argument("--min-runs", type=int, default=3, help="shortest segment, in runs (3)")
    h.set_defaults(handler=_history)

    b = sub.add_parser("baseline", help="save and list stored baselines for compare")
    # A parser's subparsers are of its own class: the CLI's, which turns errors into exit 2.
    bsub = b.add_subparsers(dest="baseline_command", metavar="ACTION")
    s = bsub.add_parser(
        "save",
        help="store a run's records as baseline NAME",
        description="Copies what compare needs (metrics, raw latencies, sha256, environment, "
        "per-example accuracy) into STORE/NAME.jsonl, and each record's artifact into "
        "STORE/artifacts/SHA256/ (stored once per content; compare --rerun and ab time them "
        "again from there); STORE is --store, else $ACCELBENCH_BASELINE_STORE, else "
        ".accelbench/baselines.",
    )
    s.add_argument("run_dir", help="run folder")
    s.add_argument("--name", required=True, help="baseline name, e.g. main")
    s.add_argument("--store", default=None, help="baseline store folder")
    s.add_argument("--force", action="store_true", help="replace an existing baseline")
    s.add_argument(
        "--no-artifacts",
        action="store_true",
        help="store the records only (compare works, compare --rerun and ab cannot re-measure)",
    )
    s.set_defaults(handler=_baseline_save)
    ls = bsub.add_parser("list", help="list the stored baselines")
    ls.add_argument("--store", default=None, help="baseline store folder")
    ls.set_defaults(handler=_baseline_list)
    b.set_defaults(handler=_baseline_missing)


def _history(args: argparse.Namespace) -> int:
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
    return 0


def _baseline_save(args: argparse.Namespace) -> int:
    from accelbench.report.baselines import ARTIFACTS_DIR, save_baseline, store_dir

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
    print(f"compare with 'accelbench compare baseline:{args.name} RUN_DIR' (add --rerun to time "
          "both sides' artifacts again, paired)")  # fmt: skip
    return 0


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def _baseline_list(args: argparse.Namespace) -> int:
    from accelbench.report.baselines import list_baselines, store_dir
    from accelbench.report.compare import text_table

    found = list_baselines(args.store)
    if not found:
        print(f"no baselines in {store_dir(args.store)}; save one with 'accelbench baseline save'")
        return 0
    rows = [
        [b["name"], str(b.get("run_id", "")), str(b.get("saved_at", "")), str(b.get("cells", "")),
         b["path"] if "error" not in b else f"damaged: {b['error']}"]
        for b in found
    ]  # fmt: skip
    print(text_table(["name", "run", "saved", "cells", "file"], rows))
    return 0


def _baseline_missing(args: argparse.Namespace) -> int:
    raise UsageError(
        "say 'accelbench baseline save RUN_DIR --name NAME' or 'accelbench baseline list'"
    )
