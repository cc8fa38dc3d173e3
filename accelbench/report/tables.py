"""The run's table: records flattened into rows, written as results.parquet and summary.md."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import (
    RECORDS_FILE,
    Record,
    as_records,
    read_records,
)

# The columns a person reads first; every other metric follows in name order.
HEADLINE_METRICS = (
    "accuracy",
    "auc",
    "accuracy_delta",
    "auc_delta",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "qps",
    "projected_latency_ms",
    "load_ms",
    "first_inference_ms",
    "peak_rss_mb",
    "model_bytes",
    "examples_per_s",
    "mb_per_s",
    "speedup_vs_naive",
    "step_time_ms",
    "time_to_target_s",
    "scaling_efficiency",
    "server_peak_qps",
)
# Settings that tell apart the configurations of one cell (pipeline, training, serving).
# fmt: skip below: 8 names packed as a paragraph, not one per line.
SETTING_COLUMNS = (
    "format", "pipeline", "framework", "strategy", "precision", "xla", "devices", "mode",
)  # fmt: skip
ID_COLUMNS = ("model", "optimization", "profile", "execution", "threads", "scenario", "status")


def flatten(record: Record) -> dict[str, Any]:
    """One row per record: identity columns, then one column per metric value, then the error."""
    row: dict[str, Any] = {k: getattr(record, k) for k in ("cell_id", *ID_COLUMNS, "runtime")}
    row["valid"] = record.validity.result if record.validity else None
    settings = record.settings or {}
    for key in SETTING_COLUMNS:
        if key in settings and not isinstance(settings[key], dict | list):
            row[key] = settings[key]
    for name in sorted(record.metrics or {}):
        row[name] = record.metric(name)
    if record.cost is not None:
        row["usd_per_million_inferences"] = record.cost.usd_per_million
        row["cost_throughput"] = record.cost.throughput
    row["artifact_sha256"] = record.artifact_sha256
    row["error"] = record.error
    return row


def records_frame(records: Iterable[Record | dict[str, Any]]):  # -> pandas.DataFrame
    import pandas as pd

    return pd.DataFrame([flatten(r) for r in as_records(records)])


def load_run(run_dir: str | Path) -> list[dict[str, Any]]:
    """Records of a run folder; a folder without records is a usage error."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(f"run folder {path} does not exist; pass a folder written by bench or run")
    if not (path / RECORDS_FILE).is_file():
        raise UsageError(
            f"{path} has no {RECORDS_FILE}; pass a folder written by accelbench bench or run"
        )
    try:
        return read_records(path)
    except ValueError as exc:
        raise UsageError(f"{exc}; restore it or re-run the cells with a new run folder") from None


SHORT_NAMES = {
    "accuracy": "accuracy",
    "auc": "AUC",
    "accuracy_delta": "Δ acc pts",
    "auc_delta": "Δ AUC pts",
    "latency_p50_ms": "p50 ms",
    "latency_p90_ms": "p90 ms",
    "latency_p99_ms": "p99 ms",
    "qps": "QPS",
    "projected_latency_ms": "projected ms",
    "load_ms": "load ms",
    "first_inference_ms": "1st inf ms",
    "peak_rss_mb": "RSS MB",
    "model_bytes": "size",
    "examples_per_s": "ex/s",
    "mb_per_s": "MB/s",
    "speedup_vs_naive": "× naive",
    "step_time_ms": "step ms",
    "time_to_target_s": "to target s",
    "scaling_efficiency": "scaling eff",
    "server_peak_qps": "peak QPS",
}
LEGEND = (
    "(emulated) = measured on this host under the device's threads, affinity and memory cap, "
    "not on the device; projected ms = the per-op device model's estimate for the real device, "
    "never measured, with its error band in brackets (from the published figures it was "
    "checked on; unchecked where none)."
)
COST_COLUMN = "$ per M inf"
COST_LEGEND = (
    "$ per M inf = US$ per million inferences at the device's throughput (measured, or "
    "projected for projected and emulated cells), the device busy the whole hour, priced by "
    "its profile's price block (cloud on demand per hour, or a purchase over its service life)."
)


def cost_cell(record: Record) -> str:
    """'0.0123 (projected)': a record's US$ per million inferences and the throughput it rests
    on; '-' where its profile states no price or it has no throughput."""
    cost = record.cost
    if cost is None or cost.usd_per_million is None:
        return "-"
    return f"{cost.usd_per_million:.3g} ({cost.throughput})"


def band_cell(record: Record, metric: str) -> str:
    """' [1.1–4.8]' after a projected latency (its error band, ms), ' [unchecked]' where no
    published figure checks the device's projection; nothing after any other figure."""
    if metric != "projected_latency_ms" or record.metric(metric) is None:
        return ""
    band, _ = record.projected_band
    if band is None:
        return " [unchecked]"
    return f" [{band[0]:.3g}–{band[1]:.3g}]"


def display_rows(
    records: Iterable[Record | dict[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """Header and string cells for printing: profile labelled with how it ran, headline metrics."""
    records = as_records(records)
    present = [m for m in HEADLINE_METRICS if any(m in (r.metrics or {}) for r in records)]
    header = ["model", "opt", "profile", "thr", "scenario", "status"]
    configured = any(_configuration(r) for r in records)
    if configured:
        header.append("config")
    header += [SHORT_NAMES[m] for m in present]
    priced = any(r.cost is not None for r in records)
    if priced:
        header.append(COST_COLUMN)
    header.append("error")
    rows = []
    for r in records:
        cells = [
            str(r.model),
            str(r.optimization),
            r.profile_label,
            str(r.threads),
            str(r.scenario),
            str(r.status),
        ]
        if configured:
            cells.append(_configuration(r))
        cells += [_fmt(r.metric(m), m) + band_cell(r, m) for m in present]
        if priced:
            cells.append(cost_cell(r))
        cells.append(str(r.error or ""))
        rows.append(cells)
    return header, rows


def _configuration(record: Record) -> str:
    """The settings that tell a cell's configurations apart, e.g. 'png/parallel'."""
    settings = record.settings or {}
    values = [
        f"{k}={settings[k]}" if isinstance(settings[k], bool) else str(settings[k])
        for k in SETTING_COLUMNS
        if k in settings and not isinstance(settings[k], dict | list)
    ]
    return "/".join(values)


def _fmt(value: Any, name: str) -> str:
    if value is None:
        return "-"
    if name == "model_bytes":
        return f"{value / 1024:.1f} KiB"
    if name.endswith("_delta"):
        return f"{value * 100:+.2f}"
    if name in ("accuracy", "auc"):
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(records: Iterable[Record | dict[str, Any]], run_dir: Path) -> str:
    records = as_records(records)
    header, rows = display_rows(records)
    env = records[0].environment if records else None
    cpu = env.cpu_model if env else None
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [
        f"# accelbench run {run_dir.name}",
        "",
        f"Cells: {len(records)} ({status}). Measured on: {cpu or 'this host'}.",
        "",
        markdown_table(header, rows),
        "",
        LEGEND,
        "",
    ]
    if COST_COLUMN in header:
        lines += [COST_LEGEND, ""]
    from accelbench.benchmarks.presets import comparability_note

    note = comparability_note([r.settings or {} for r in records])
    if note:
        lines.append(note + "\n")
    return "\n".join(lines)


def print_table(records: Iterable[Record | dict[str, Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    records = as_records(records)
    header, rows = display_rows(records)
    table = Table(title=title, show_lines=False)
    for h in header:
        table.add_column(h, no_wrap=h != "error", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # a pipe or a file: do not squeeze columns to 80
    console.print(table)
    if any(r.execution in ("emulated", "projected") for r in records):
        console.print(LEGEND)
    if COST_COLUMN in header:
        console.print(COST_LEGEND)
