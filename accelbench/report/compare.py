"""Compare two runs cell by cell: a direction-aware verdict per metric, for people and CI gates."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.report.tables import load_run, markdown_table
from accelbench.stats import benjamini_hochberg, hodges_lehmann_ratio_ci, mann_whitney_u

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
# Rows shown with their ratio but never judged (and never counted or gating): see compare_runs.
INFO = "info"

TESTED_TIME_METRIC = "latency_p50_ms"
SIZE_METRICS = ("model_bytes", "model_gzip_bytes")
QUALITY_METRICS = ("accuracy", "auc")
THROUGHPUT_METRICS = ("qps", "qps_without_loadgen_overhead")
MIN_RAW_SAMPLES = 20
# Deterministic evaluation gives bit-identical quality; this only absorbs float round-off.
QUALITY_TOLERANCE = 1e-9
# Pairwise log differences grow as n*m; 1000 per side keeps a cell's interval near 50 ms.
CI_MAX_VALUES = 1000


@dataclass(frozen=True)
class MetricComparison:
    """One (cell, metric) of a comparison: both values, their ratio and the verdict."""

    cell_id: str
    metric: str
    unit: str
    direction: str
    base: float | None
    new: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str
    sha_changed: bool
    note: str = ""


@dataclass
class Comparison:
    """The verdicts of comparing run `new_dir` against run `base_dir`, and how to print them."""

    base_dir: str
    new_dir: str
    settings: dict[str, Any]
    rows: list[MetricComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)
    only_in_new: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of rows per verdict (info rows are not counted)."""
        return {v: sum(r.verdict == v for r in self.rows) for v in VERDICTS}

    def summary_line(self) -> str:
        c = self.counts()
        return (
            f"{c['regressed']} regressed, {c['improved']} improved, "
            f"{c['unchanged']} unchanged, {c['inconclusive']} inconclusive"
        )

    def to_table_rows(self, include_unchanged: bool = True) -> tuple[list[str], list[list[str]]]:
        """Header and string cells, one row per (cell, metric); info rows come last per cell."""
        header = [
            "cell",
            "metric",
            "base",
            "new",
            "ratio",
            "95% CI (HL)",
            "p (raw)",
            "verdict",
            "sha",
        ]
        rows = []
        for r in self.rows:
            if not include_unchanged and r.verdict in ("unchanged", INFO):
                continue
            ci = f"{r.ci_low:.3f}–{r.ci_high:.3f}" if r.ci_low is not None else ""
            rows.append(
                [
                    r.cell_id,
                    r.metric,
                    _fmt(r.base),
                    _fmt(r.new),
                    f"{r.ratio:.3f}" if r.ratio is not None else "-",
                    ci,
                    f"{r.p_value:.2g}" if r.p_value is not None else "",
                    r.verdict + (f" ({r.note})" if r.note else ""),
                    "changed" if r.sha_changed else "",
                ]
            )
        return header, rows

    def to_table(self) -> str:
        """Plain-text table for a terminal, aligned columns, summary line last."""
        header, rows = self.to_table_rows()
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ]
        return "\n".join([*lines, "", *self._notes(), self.summary_line()])

    def to_markdown(self) -> str:
        """A pull-request comment: the summary line, then the table of rows that changed."""
        header, rows = self.to_table_rows(include_unchanged=False)
        parts = [f"**accelbench compare**: {self.summary_line()}"]
        parts += [f"> ⚠️ {w}" for w in self.warnings]
        if rows:
            parts.append(markdown_table(header, rows))
        parts.append(
            f"base `{self.base_dir}`, new `{self.new_dir}`; threshold "
            f"{self.settings['threshold']:.1%}, alpha {self.settings['alpha']} (Benjamini–Hochberg"
            f" over {self.settings['time_tests']} latency tests), floor {self.settings['floor_ms']}"
            " ms."
        )
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> str:
        """Everything, machine-readable: settings, counts, warnings, unmatched cells and rows."""
        payload = {
            "base": self.base_dir,
            "new": self.new_dir,
            "settings": self.settings,
            "counts": self.counts(),
            "warnings": self.warnings,
            "only_in_base": self.only_in_base,
            "only_in_new": self.only_in_new,
            "rows": [asdict(r) for r in self.rows],
        }
        return json.dumps(payload, indent=2, allow_nan=False)

    def _notes(self) -> list[str]:
        notes = [f"warning: {w}" for w in self.warnings]
        return notes + ([""] if notes else [])


def compare_runs(
    base_dir: str | Path,
    new_dir: str | Path,
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    floor_ms: float = 0.005,
    allow_different_hardware: bool = False,
) -> Comparison:
    """Compare the records of run `new_dir` with those of run `base_dir`, cell by cell.

    Cells are matched by `cell_id` (logical identity), never by artifact hash; a changed sha256
    is flagged on every row of that cell. Per metric that has a direction:

    - `latency_p50_ms`: Mann–Whitney U on the two cells' `raw_latencies_ms`, p-values corrected by
      Benjamini–Hochberg over every such test in the comparison. Regressed (improved) only when the
      corrected test rejects at `alpha`, the median grew (shrank) by more than `threshold`, and by
      more than `floor_ms`. `ratio` is new/base of the recorded p50s; `ci_low`/`ci_high` bound the
      Hodges–Lehmann shift ratio of the raw latencies (the typical pairwise ratio, which differs
      from the p50 ratio for multimodal latencies). `p_value` is the uncorrected p. Under 20 raw
      latencies on either side, or a different
      `host_fingerprint_id` without `allow_different_hardware`, it is inconclusive. The ratio
      carries a Hodges–Lehmann 95% interval.
    - `model_bytes`, `model_gzip_bytes`: exact; any growth is regressed, any shrink improved.
    - `accuracy`, `auc`: exact (evaluation is deterministic); a change over 1e-9 is a verdict.
    - `qps`, `qps_without_loadgen_overhead` (higher is better): one number per run, so no test of
      its own. A change over `threshold` is regressed (improved) only when the same cell's latency
      verdict is regressed (improved), since throughput comes from the same queries; without that
      evidence (no raw latencies, latency unchanged, other hardware) it is inconclusive. A change
      within `threshold` is unchanged.
    - Other directed metrics (tail percentiles, load time, RSS, deltas): ratio only, verdict
      `info`, never gating — they have no raw samples to test.
    - A cell ok in base but failed or invalid in new is a `status` row, regressed (and the
      reverse improved).
    """
    _check_settings(threshold, alpha, floor_ms)
    base = _cells(base_dir)
    new = _cells(new_dir)
    common = [cell for cell in base if cell in new]
    if not common:
        raise UsageError(
            f"{base_dir} and {new_dir} have no cells in common; compare two runs of the same suite"
        )
    comparison = Comparison(
        str(base_dir),
        str(new_dir),
        {
            "threshold": threshold,
            "alpha": alpha,
            "floor_ms": floor_ms,
            "allow_different_hardware": allow_different_hardware,
        },
        only_in_base=sorted(set(base) - set(new)),
        only_in_new=sorted(set(new) - set(base)),
    )
    if comparison.only_in_base or comparison.only_in_new:
        comparison.warnings.append(
            f"{len(comparison.only_in_base)} cells only in base and "
            f"{len(comparison.only_in_new)} only in new were not compared"
        )
    hosts = {(_host(base[c]), _host(new[c])) for c in common if _host(base[c]) != _host(new[c])}
    same_hardware = not hosts
    if hosts and not allow_different_hardware:
        comparison.warnings.append(
            "the runs come from different hosts (fingerprints "
            + ", ".join(f"{a} vs {b}" for a, b in sorted(hosts, key=str))
            + "), so time verdicts are inconclusive; pass --allow-different-hardware to judge them"
        )
    elif hosts:
        comparison.warnings.append("the runs come from different hosts; times judged anyway")

    pending: list[tuple[int, float]] = []  # (row index, raw p) for the BH correction
    for cell in common:
        rows = _compare_cell(base[cell], new[cell], same_hardware or allow_different_hardware)
        for row, raw_p in rows:
            if raw_p is not None:
                pending.append((len(comparison.rows), raw_p))
            comparison.rows.append(row)
    comparison.settings["time_tests"] = len(pending)
    _apply_time_verdicts(comparison.rows, pending, threshold, alpha, floor_ms)
    return comparison


def exit_code(comparison: Comparison, fail_on: tuple[str, ...] | list[str] = ("regressed",)) -> int:
    """1 when any row's verdict is in fail_on, else 0 (the CLI uses 2 for a UsageError)."""
    unknown = [v for v in fail_on if v not in VERDICTS]
    if unknown:
        raise UsageError(
            f"--fail-on {','.join(unknown)} is not a verdict; use some of {', '.join(VERDICTS)}"
        )
    return int(any(r.verdict in fail_on for r in comparison.rows))


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' → 0.05; anything else is a UsageError."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 10.0:
        raise UsageError(f"--threshold {text!r} is not a relative change; write it like 5% or 0.05")
    return value


def _check_settings(threshold: float, alpha: float, floor_ms: float) -> None:
    if not threshold >= 0.0:
        raise UsageError(f"threshold {threshold} is negative; give a relative change like 0.05")
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"alpha {alpha} is not between 0 and 1; give a level like 0.01")
    if not floor_ms >= 0.0:
        raise UsageError(f"floor_ms {floor_ms} is negative; give an absolute floor like 0.005")


def _cells(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The run's records by cell_id; a resumed cell's later record replaces the earlier one."""
    records = load_run(run_dir)
    cells: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not isinstance(record.get("cell_id"), str):
            raise UsageError(
                f"record {number} of {run_dir} has no cell_id; the records file is corrupt or not"
                " accelbench's"
            )
        if not isinstance(record.get("metrics", {}), dict):
            raise UsageError(f"record {number} of {run_dir} has malformed metrics; re-run it")
        cells[record["cell_id"]] = record
    if not cells:
        raise UsageError(f"{run_dir} has no records; pass a run folder with finished cells")
    return cells


def _host(record: dict[str, Any]) -> str | None:
    return (record.get("environment") or {}).get("host_fingerprint_id")


def _sha(record: dict[str, Any]) -> str | None:
    return (record.get("artifact") or {}).get("sha256")


def _compare_cell(
    base: dict[str, Any], new: dict[str, Any], judge_time: bool
) -> list[tuple[MetricComparison, float | None]]:
    """Rows of one cell, each with the raw Mann–Whitney p when it awaits the BH correction."""
    sha_changed = _sha(base) != _sha(new)
    cell = base["cell_id"]
    out: list[tuple[MetricComparison, float | None]] = []
    if base.get("status") != new.get("status"):
        verdict = "unchanged"
        if base.get("status") == "ok" and new.get("status") in ("failed", "invalid"):
            verdict = "regressed"
        elif new.get("status") == "ok" and base.get("status") in ("failed", "invalid"):
            verdict = "improved"
        row = MetricComparison(
            cell, "status", "", "", None, None, None, None, None, None, verdict, sha_changed,
            f"{base.get('status')} → {new.get('status')}",
        )  # fmt: skip
        out.append((row, None))
    base_metrics = base.get("metrics") or {}
    new_metrics = new.get("metrics") or {}
    for name in sorted(set(base_metrics) & set(new_metrics)):
        b, n = base_metrics[name], new_metrics[name]
        direction = b.get("direction")
        bv, nv = b.get("value"), n.get("value")
        if direction not in ("lower", "higher") or bv is None or nv is None:
            continue
        ratio = nv / bv if bv else None
        row = dict(
            cell_id=cell, metric=name, unit=b.get("unit", ""), direction=direction, base=bv,
            new=nv, ratio=ratio, ci_low=None, ci_high=None, p_value=None, verdict=INFO,
            sha_changed=sha_changed,
        )  # fmt: skip
        raw_p = None
        better = (nv < bv) if direction == "lower" else (nv > bv)
        worse = (nv > bv) if direction == "lower" else (nv < bv)
        if name in SIZE_METRICS:
            row["verdict"] = "regressed" if worse else "improved" if better else "unchanged"
        elif name in QUALITY_METRICS:
            changed = abs(nv - bv) > QUALITY_TOLERANCE
            row["verdict"] = "unchanged" if not changed else "regressed" if worse else "improved"
        elif name == TESTED_TIME_METRIC:
            raw_b = base.get("raw_latencies_ms") or []
            raw_n = new.get("raw_latencies_ms") or []
            if not judge_time:
                row.update(verdict="inconclusive", note="different hardware")
            elif min(len(raw_b), len(raw_n)) < MIN_RAW_SAMPLES:
                row.update(verdict="inconclusive", note=f"< {MIN_RAW_SAMPLES} raw latencies")
            else:
                _, raw_p = mann_whitney_u(raw_b, raw_n)
                _, low, high = hodges_lehmann_ratio_ci(raw_b, raw_n, max_values=CI_MAX_VALUES)
                row.update(ci_low=low, ci_high=high, verdict="pending")
        elif name in THROUGHPUT_METRICS:
            row["verdict"] = "pending" if judge_time else "inconclusive"
            if not judge_time:
                row["note"] = "different hardware"
        out.append((MetricComparison(**row), raw_p))
    return out


def _apply_time_verdicts(
    rows: list[MetricComparison],
    pending: list[tuple[int, float]],
    threshold: float,
    alpha: float,
    floor_ms: float,
) -> None:
    """Latency verdicts after the BH correction, then throughput verdicts that lean on them."""
    rejected = benjamini_hochberg([p for _, p in pending], alpha)
    # cell_id -> +1 slower, -1 faster, for latency verdicts that passed test, threshold and floor.
    judged: dict[str, int] = {}
    for (index, p), reject in zip(pending, rejected, strict=True):
        r = rows[index]
        change = r.new - r.base
        big = r.ratio is not None and abs(r.ratio - 1.0) > threshold and abs(change) > floor_ms
        verdict = "unchanged"
        if reject and big:
            verdict = "regressed" if change > 0 else "improved"
        if verdict != "unchanged":
            judged[r.cell_id] = 1 if change > 0 else -1
        note = "" if reject or not big else f"not significant at alpha {alpha} after BH"
        rows[index] = _replace(r, p_value=p, verdict=verdict, note=note)
    for index, r in enumerate(rows):
        if r.verdict != "pending":
            continue
        big = r.ratio is not None and abs(r.ratio - 1.0) > threshold
        # Throughput falls exactly when latency rises: a qps drop agrees with a slower cell.
        agrees = judged.get(r.cell_id) == (1 if r.new < r.base else -1)
        if not big:
            verdict, note = "unchanged", ""
        elif agrees:
            verdict, note = ("regressed" if r.new < r.base else "improved"), ""
        else:
            verdict, note = "inconclusive", "no latency verdict behind it"
        rows[index] = _replace(r, verdict=verdict, note=note)


def _replace(row: MetricComparison, **changes: Any) -> MetricComparison:
    return MetricComparison(**{**asdict(row), **changes})


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
