"""History across runs: a trend per (cell, metric), its change points, a table and an HTML plot.

Runs come from run folders, folders of run folders (``results/``), baseline files and baseline
stores, ordered by time (a run's time is its earliest record's ``finished_at``). A baseline
saved from a run that is also given as a folder counts once. Change points are found by
E-divisive means (``accelbench.stats.e_divisive``) on the per-run values of each series, which
for latency are the per-run medians (``latency_p50_ms``).
"""

from __future__ import annotations

import base64
import fnmatch
import html
import math
import os
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import RECORDS_FILE, Metric, Record, write_atomic
from accelbench.report import baselines
from accelbench.report.compare import Source, load_source, text_table
from accelbench.stats import e_divisive

DEFAULT_METRICS = ("latency_p50_ms", "qps", "accuracy", "model_bytes")


@dataclass
class Run:
    """One point in time: a run folder or a stored baseline, and its records by cell_id."""

    run_id: str
    when: str
    source: Source


@dataclass
class ChangePoint:
    """Where a series shifts: the first run of the new segment and the segment medians."""

    index: int
    run_id: str
    before: float
    after: float

    @property
    def shift(self) -> float | None:
        """Relative change of the median, after / before - 1 (None when before is 0)."""
        return self.after / self.before - 1.0 if self.before else None


@dataclass
class Trend:
    """One (cell, execution, metric) across runs, oldest first.

    Execution (local, emulated, projected, remote) is part of the series: a cell measured here in
    one run and projected in the next is two series, not one that jumps.
    """

    cell_id: str
    metric: str
    unit: str
    direction: str
    run_ids: list[str]
    values: list[float]
    change_points: list[ChangePoint] = field(default_factory=list)
    execution: str = "unknown"


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Every run under `paths`, oldest first; a path with no run in it is a UsageError."""
    runs: list[Run] = []
    for path in (Path(p) for p in paths):
        found = [_run(s) for s in _sources(path)]
        if not found:
            raise UsageError(
                f"{path} holds no run folders (with {RECORDS_FILE}) and no baselines; pass a "
                "results folder, a run folder or a baseline store"
            )
        runs.extend(found)
    # A run given both as a folder and as a baseline saved from it is one point, not two.
    unique: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.source.kind != "run"):
        unique.setdefault(run.run_id, run)
    return sorted(unique.values(), key=lambda r: (r.when, r.run_id))


def build_trends(
    runs: list[Run], metrics: list[str] | None = None, cell_pattern: str | None = None
) -> list[Trend]:
    """One Trend per (cell, execution, metric) with a value in at least one run (ok records only).

    metrics: names to follow (default: those of DEFAULT_METRICS that any run has); a name no run
    has is a UsageError. cell_pattern: a glob on cell ids (a plain word matches as a substring).
    """
    if not runs:
        raise UsageError("no runs to build a history from; pass folders that hold runs")
    available = sorted(
        {name for run in runs for rec in run.source.records.values() for name in _metrics(rec)}
    )
    if metrics:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise UsageError(
                f"metric {', '.join(unknown)} is in no run; available: {', '.join(available)}"
            )
        chosen = list(metrics)
    else:
        chosen = [m for m in DEFAULT_METRICS if m in available]
    pattern = cell_pattern or "*"
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    series: dict[tuple[str, str, str], Trend] = {}
    for run in runs:
        for cell_id, record in run.source.records.items():
            if record.status != "ok" or not fnmatch.fnmatchcase(cell_id, pattern):
                continue
            execution = record.execution_label
            for name in chosen:
                m = _metrics(record).get(name)
                if m is None or m.value is None:
                    continue
                trend = series.setdefault(
                    (*record.cell_key, name),
                    Trend(cell_id, name, m.unit, m.direction, [], [], execution=execution),
                )
                trend.run_ids.append(run.run_id)
                trend.values.append(float(m.value))
    if not series:
        raise UsageError(
            f"no cell matches {cell_pattern!r} with a value of {', '.join(chosen)}; check the "
            "pattern against the cell ids in 'accelbench results show'"
        )
    return [series[key] for key in sorted(series)]


def detect_change_points(
    trends: list[Trend], sig_level: float = 0.01, min_size: int = 3, seed: int = 0
) -> None:
    """Fill each trend's change points (E-divisive, permutation test at sig_level)."""
    for trend in trends:
        if len(trend.values) < 2 * min_size:
            trend.change_points = []
            continue
        cuts = e_divisive(trend.values, sig_level=sig_level, min_size=min_size, seed=seed)
        bounds = [0, *cuts, len(trend.values)]
        trend.change_points = [
            ChangePoint(
                index=cut,
                run_id=trend.run_ids[cut],
                before=statistics.median(trend.values[bounds[i] : cut]),
                after=statistics.median(trend.values[cut : bounds[i + 2]]),
            )
            for i, cut in enumerate(cuts)
        ]


def history_table(trends: list[Trend]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: cell, execution, metric, runs, last value, change points with shifts."""
    # fmt: skip below: 6 names packed as a paragraph, not one per line.
    header = ["cell", "execution", "metric", "runs", "last",
              "change points (first run of new level: shift)"]  # fmt: skip
    rows = []
    for t in trends:
        points = "; ".join(_describe(cp, t.unit) for cp in t.change_points) or "none"
        rows.append(
            [t.cell_id, t.execution, t.metric, str(len(t.values)), _fmt(t.values[-1]), points]
        )
    return header, rows


def history_text(trends: list[Trend], runs: list[Run]) -> str:
    header, rows = history_table(trends)
    found = sum(len(t.change_points) for t in trends)
    span = f"{runs[0].run_id} ({runs[0].when}) to {runs[-1].run_id} ({runs[-1].when})"
    return "\n".join(
        [
            text_table(header, rows),
            "",
            f"{len(runs)} runs, {span}; {len(trends)} series, {found} change points "
            "(E-divisive means, permutation test).",
        ]
    )


def write_html(trends: list[Trend], runs: list[Run], path: str | Path) -> Path:
    """A self-contained page: the table, then one trend plot per series (change points marked)."""
    from accelbench.report.plots import trend_png

    path = Path(path)
    header, rows = history_table(trends)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>accelbench history</title><style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:13px}img{max-width:100%}</style></head><body>",
        f"<h1>accelbench history</h1><p>{len(runs)} runs from {html.escape(runs[0].when)} to "
        f"{html.escape(runs[-1].when)}. Change points: E-divisive means with a permutation test "
        "(Matteson &amp; James 2014); a dashed line marks the first run of a new level.</p>",
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>",
        *("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows),
        "</table>",
    ]
    # Series with a change point first: they are what a reader came for.
    for t in sorted(trends, key=lambda t: (not t.change_points, t.cell_id, t.execution, t.metric)):
        ylabel = f"{t.metric} ({t.unit})" if t.unit else t.metric
        cuts = [cp.index for cp in t.change_points]
        title = f"{t.cell_id} ({t.execution})"
        png = trend_png(title, t.run_ids, t.values, cuts, ylabel)
        encoded = base64.b64encode(png).decode()
        alt = html.escape(f"{t.metric} of {title} over {len(t.values)} runs")
        parts.append(f"<h3>{html.escape(title)}: {html.escape(t.metric)}</h3>")
        parts.append(f"<img alt='{alt}' src='data:image/png;base64,{encoded}'>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, "\n".join(parts))


def _sources(path: Path) -> list[Source]:
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass a results folder or a baseline store")
    if path.is_file() or (path / RECORDS_FILE).is_file():
        return [load_source(path)]
    found = [load_source(d) for d in sorted(path.iterdir()) if (d / RECORDS_FILE).is_file()]
    found += [load_source(f) for f in sorted(path.glob("*.jsonl")) if baselines.is_baseline_file(f)]
    return found


def _run(source: Source) -> Run:
    records = source.records.values()
    run_id = source.detail.get("run_id") or next(
        (r.run_id for r in records if r.run_id is not None), Path(source.path).name
    )
    times = [t for t in (_time(r.finished_at) for r in records) if t is not None]
    if times:
        when = min(times).astimezone(UTC).isoformat(timespec="seconds")
    else:  # no timestamps: the file's own time is the best there is
        records = Path(source.path)
        records = records / RECORDS_FILE if records.is_dir() else records
        mtime = datetime.fromtimestamp(os.path.getmtime(records), UTC)
        when = mtime.isoformat(timespec="seconds")
    return Run(str(run_id), when, source)


def _time(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


def _metrics(record: Record) -> dict[str, Metric]:
    """The record's metrics that have a finite value (a trend of them can be drawn)."""
    return {
        name: m
        for name, m in (record.metrics or {}).items()
        if m.value is not None and math.isfinite(m.value)
    }


def _describe(cp: ChangePoint, unit: str) -> str:
    shift = f"{cp.shift:+.1%}" if cp.shift is not None else "from 0"
    return f"{cp.run_id}: {shift} ({_fmt(cp.before)} → {_fmt(cp.after)} {unit})".rstrip()


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"
