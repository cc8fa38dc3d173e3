"""Compare two runs cell by cell: a direction-aware verdict per metric, for people and CI gates.

Either side is a run folder, a stored baseline (``baseline:NAME`` or its .jsonl file) or a
pytest-benchmark JSON file (or a pytest-benchmark storage folder: its latest file); the kind is
found from the content, not the name.

The machine-speed canary. On a shared machine the host's own speed drifts by tens of percent
between runs minutes apart, and every latency follows it. The worker times a fixed CPU-bound
workload right before and right after each LoadGen cell (``accelbench.benchmarks.canary``; the
record's ``canary``: ``before_ms``, ``after_ms``). When both records of a cell pair carry one, the
canary ratio c = new/base of the mean of before and after is shown on the cell's rows
(``canary_ratio``). If c lies outside [1/(1+t/2), 1+t/2] (t: the threshold), the machine's speed
changed between the runs, and a latency verdict must hold relative to it: besides the usual test,
threshold and floor, the latency ratio divided by c must itself pass the threshold in the same
direction; otherwise the verdict is ``inconclusive`` ("machine speed changed ×1.38 (canary);
latency ×1.41 follows it"), and the cell's throughput verdicts, which follow its latency verdict,
are inconclusive too. The canary only ever withholds a verdict; it never makes one (a latency
that did not move while the machine slowed stays unchanged). Without a canary on both sides (older
runs, pytest-benchmark files), nothing changes.

Projected and emulated cells. A projected latency (the per-op model's estimate for a device,
never measured) is shown with its error band, as the run's table shows it, and never judged: the
row is ``info`` and its note says whether the two bands overlap (then the model cannot tell the
sides apart) or not. An emulated cell's latency and throughput are this host's under the device's
limits; their verdicts stand, and their notes say so.

Re-measured time verdicts. ``compare --rerun`` (``accelbench.runner.rerun``) times both sides'
artifacts against each other now, paired, and hands the results to `compare_runs` as
``time_verdicts``: then every time verdict comes from them and none from the recorded latencies.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import QUALITY_METRICS, RECORDS_FILE, Record
from accelbench.report import baselines, pytest_benchmark
from accelbench.report.tables import band_cell, load_run, markdown_table
from accelbench.stats import (
    benjamini_hochberg,
    hodges_lehmann_ratio_ci,
    mann_whitney_u,
    mcnemar_exact,
)

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
# Rows shown with their ratio but never judged (and never counted or gating): see compare_runs.
INFO = "info"

TESTED_TIME_METRIC = "latency_p50_ms"
OFFLINE = "offline"
SIZE_METRICS = ("model_bytes", "model_gzip_bytes")
# The quality metric whose per-example outcomes (quality.correct_bits) a McNemar test can pair.
PAIRED_QUALITY_METRIC = "accuracy"
SIZE_POLICIES = ("exact", "threshold")
THROUGHPUT_METRICS = ("qps", "qps_without_loadgen_overhead")
# The per-op model's estimate for the device: shown with its error band, never judged.
PROJECTED_METRIC = "projected_latency_ms"
MIN_RAW_SAMPLES = 20
# Deterministic evaluation gives bit-identical quality; this only absorbs float round-off.
QUALITY_TOLERANCE = 1e-9
# Pairwise log differences grow as n*m; 1000 per side keeps a cell's interval near 50 ms.
CI_MAX_VALUES = 1000


@dataclass
class Source:
    """One side of a comparison: what it is, how to name it, and its records by cell_id."""

    kind: str  # "run", "baseline" or "pytest-benchmark"
    path: str
    label: str
    records: dict[str, Record]
    detail: dict[str, Any] = field(default_factory=dict)
    # The folder a record's relative artifact path is read against: the run folder, or the
    # baseline store that holds the baseline's copies of its artifacts.
    root: str = ""

    @functools.cached_property
    def cells(self) -> dict[str, dict[str, Any]]:
        """The records as the dicts they were read from, by cell_id."""
        return {cell: record.to_dict() for cell, record in self.records.items()}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "label": self.label, **self.detail}


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
    # new/base of the cell's machine-speed canary, when both records carry one (module docstring).
    canary_ratio: float | None = None
    # How both sides obtained their figures (local, emulated, projected, remote): part of the
    # cell's identity, so an emulated p50 is never read as a device's latency.
    execution: str = ""
    # A projected figure's error band as tables show it (" [0.22–0.97]", " [unchecked]").
    base_band: str = ""
    new_band: str = ""


@dataclass
class CellMatch:
    """Which cells of two sources are compared: same cell_id and same execution."""

    common: list[str]
    # Cells in both that ran differently ({cell_id, base_execution, new_execution, reason}).
    differs: list[dict[str, str]]
    only_in_base: list[str]
    only_in_new: list[str]


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
    # Cells in both runs that ran differently ({cell_id, base_execution, new_execution, reason}).
    execution_differs: list[dict[str, str]] = field(default_factory=list)
    base_source: dict[str, Any] = field(default_factory=dict)
    new_source: dict[str, Any] = field(default_factory=dict)

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
            "execution",
            "metric",
            "base",
            "new",
            "ratio",
            "95% CI (HL)",
            "p (raw)",
            "verdict",
            "sha",
        ]
        canary = any(r.canary_ratio is not None for r in self.rows)
        if canary:
            header.insert(-2, "canary")
        rows = []
        for r in self.rows:
            if not include_unchanged and r.verdict in ("unchanged", INFO):
                continue
            ci = f"{r.ci_low:.3f}–{r.ci_high:.3f}" if r.ci_low is not None else ""
            row = [
                r.cell_id,
                r.execution or "-",
                r.metric,
                _fmt(r.base) + r.base_band,
                _fmt(r.new) + r.new_band,
                f"{r.ratio:.3f}" if r.ratio is not None else "-",
                ci,
                f"{r.p_value:.2g}" if r.p_value is not None else "",
                r.verdict + (f" ({r.note})" if r.note else ""),
                "changed" if r.sha_changed else "",
            ]
            if canary:
                row.insert(-2, f"{r.canary_ratio:.3f}" if r.canary_ratio is not None else "")
            rows.append(row)
        return header, rows

    def to_table(self) -> str:
        """Plain-text table for a terminal, aligned columns, summary line last."""
        header, rows = self.to_table_rows()
        return "\n".join([text_table(header, rows), "", *self._notes(), self.summary_line()])

    def to_markdown(self) -> str:
        """A pull-request comment: the summary line, then the table of rows that changed."""
        header, rows = self.to_table_rows(include_unchanged=False)
        parts = [f"**accelbench compare**: {self.summary_line()}"]
        parts += [f"> ⚠️ {w}" for w in self.warnings]
        if rows:
            parts.append(markdown_table(header, rows))
        base = self.base_source.get("label") or f"`{self.base_dir}`"
        new = self.new_source.get("label") or f"`{self.new_dir}`"
        if self.settings.get("time_verdicts"):
            parts.append(self._paired_footer(base, new))
            return "\n\n".join(parts) + "\n"
        parts.append(
            f"base {base}, new {new}; threshold {self.settings['threshold']:.1%}, alpha "
            f"{self.settings['alpha']} (Benjamini–Hochberg over "
            f"{self.settings['time_tests']} latency Mann–Whitney tests and "
            f"{self.settings.get('accuracy_tests', 0)} accuracy McNemar tests; p is the raw p of "
            f"the row's test), floor {self.settings['floor_ms']} ms, size policy "
            f"{self.settings.get('size_policy', 'exact')}"
            + (
                f"; latency judged relative to the machine-speed canary where it moved by more "
                f"than {self.settings['canary_tolerance']:.1%}."
                if any(r.canary_ratio is not None for r in self.rows)
                else "."
            )
        )
        return "\n\n".join(parts) + "\n"

    def _paired_footer(self, base: str, new: str) -> str:
        return (
            f"base {base}, new {new}; threshold {self.settings['threshold']:.1%}. Time verdicts "
            "(`rerun_time_ratio`: NEW/BASE call time) come from re-measuring both sides' artifacts "
            "here, in one worker per artifact pair, query by query in a shuffled order "
            "(Hodges–Lehmann ratio, 95% signed-rank interval); the recorded latencies and "
            f"throughputs are shown for information. Accuracy: alpha {self.settings['alpha']} "
            f"(Benjamini–Hochberg over {self.settings.get('accuracy_tests', 0)} McNemar tests), "
            f"size policy {self.settings.get('size_policy', 'exact')}."
        )

    def to_json(self) -> str:
        """Everything, machine-readable: settings, counts, warnings, unmatched cells and rows."""
        payload = {
            "base": self.base_dir,
            "new": self.new_dir,
            "base_source": self.base_source,
            "new_source": self.new_source,
            "settings": self.settings,
            "counts": self.counts(),
            "warnings": self.warnings,
            "only_in_base": self.only_in_base,
            "only_in_new": self.only_in_new,
            "execution_differs": self.execution_differs,
            "rows": [asdict(r) for r in self.rows],
        }
        return json.dumps(payload, indent=2, allow_nan=False)

    def _notes(self) -> list[str]:
        notes = [f"warning: {w}" for w in self.warnings]
        sources = [
            f"{side}: {source['label']}"
            for side, source in (("base", self.base_source), ("new", self.new_source))
            if source.get("label")
        ]
        return sources + notes + ([""] if notes or sources else [])


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned with two spaces between them, for a terminal."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def compare_runs(
    base_dir: str | Path | Source,
    new_dir: str | Path | Source,
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    floor_ms: float = 0.005,
    allow_different_hardware: bool = False,
    size_policy: str = "exact",
    store: str | Path | None = None,
    time_verdicts: dict[str, dict[str, Any]] | None = None,
) -> Comparison:
    """Compare the records of `new_dir` with those of `base_dir`, cell by cell.

    Each side is anything `load_source` reads (a run folder, ``baseline:NAME`` looked up in
    `store`, a baseline file, a pytest-benchmark JSON file or storage folder) or a Source.

    Cells are matched by `cell_id` (logical identity) and `execution`, never by artifact hash; a
    changed sha256 is flagged on every row of that cell. A cell whose two records ran
    differently (local against emulated or projected, say) is not compared: it is listed in
    `execution_differs` and a warning, since one side's figure is not the other's device's.
    Per metric that has a direction:

    - `latency_p50_ms` of an Offline cell is `info`: its raw values are completion times within
      one query, not request latencies; the cell's `qps` speaks for it.
    - `latency_p50_ms`: Mann–Whitney U on the two cells' `raw_latencies_ms`, p-values corrected by
      Benjamini–Hochberg over every such test in the comparison. Regressed (improved) only when the
      corrected test rejects at `alpha`, the median grew (shrank) by more than `threshold`, and by
      more than `floor_ms`. `ratio` is new/base of the recorded p50s; `ci_low`/`ci_high` bound the
      Hodges–Lehmann shift ratio of the raw latencies (the typical pairwise ratio, which differs
      from the p50 ratio for multimodal latencies). `p_value` is the uncorrected p. When both
      records carry a machine-speed canary that moved by more than half the threshold, the ratio
      divided by the canary's ratio must also pass the threshold in the same direction, else
      inconclusive (module docstring). Under 20 raw
      latencies on either side, or a different
      `host_fingerprint_id` without `allow_different_hardware`, it is inconclusive (the note
      says "no raw timings" when a side has none at all, as in a pytest-benchmark file saved
      without ``--benchmark-save-data``). The ratio carries a Hodges–Lehmann 95% interval.
    - `model_bytes`, `model_gzip_bytes`: with `size_policy` "exact" (the default) any growth is
      regressed and any shrink improved, one byte included; with "threshold" only a relative
      change over `threshold` counts.
    - `accuracy`: when both records carry ``quality.correct_bits`` of the same length (the same
      evaluation set, example by example), identical bits are unchanged (deterministic
      evaluation, exact) and different bits get the exact McNemar test on the discordant pairs;
      its p joins the latency p-values in one Benjamini–Hochberg family, and a rejection is
      regressed (improved) by the direction of the change. Without the bits, exact: a change
      over 1e-9 is a verdict. `auc` is always exact (a per-example hit says nothing of AUC).
    - `qps`, `qps_without_loadgen_overhead` (higher is better): one number per run, so no test of
      its own. A change over `threshold` is regressed (improved) only when the same cell's latency
      verdict is regressed (improved), since throughput comes from the same queries; without that
      evidence (no raw latencies, latency unchanged, other hardware) it is inconclusive. A change
      within `threshold` is unchanged.
    - Other directed metrics (tail percentiles, load time, RSS, deltas): ratio only, verdict
      `info`, never gating — they have no raw samples to test.
    - A cell ok in base but failed or invalid in new is a `status` row, regressed (and the
      reverse improved).

    `time_verdicts` (``compare --rerun``): both sides' artifacts re-measured paired, here and now,
    keyed by cell_id. Then no time verdict comes from the records: the latency and throughput
    rows are `info`, and each cell in `time_verdicts` gets one `rerun_time_ratio` row (NEW/BASE of
    the call times) carrying its entry's ``verdict``, ``ratio``, ``ci_low``, ``ci_high``,
    ``base_p50_ms``, ``new_p50_ms`` and ``pairs``; an entry with ``reason`` instead (not
    re-measured, or the re-measurement failed) makes that row inconclusive with the reason.
    Different hosts no longer withhold time verdicts: both sides ran on this machine.
    """
    _check_settings(threshold, alpha, floor_ms)
    if size_policy not in SIZE_POLICIES:
        raise UsageError(
            f"size policy {size_policy!r} is unknown; use {' or '.join(SIZE_POLICIES)}"
        )
    base_source = base_dir if isinstance(base_dir, Source) else load_source(base_dir, store)
    new_source = new_dir if isinstance(new_dir, Source) else load_source(new_dir, store)
    base, new = base_source.records, new_source.records
    match = match_cells(base_source, new_source)
    common, differs = match.common, match.differs
    comparison = Comparison(
        base_source.path,
        new_source.path,
        {
            "threshold": threshold,
            "alpha": alpha,
            "floor_ms": floor_ms,
            "allow_different_hardware": allow_different_hardware,
            "size_policy": size_policy,
            "canary_tolerance": threshold / 2.0,
        },
        only_in_base=match.only_in_base,
        only_in_new=match.only_in_new,
        execution_differs=differs,
        base_source=base_source.describe(),
        new_source=new_source.describe(),
    )
    if comparison.only_in_base or comparison.only_in_new:
        comparison.warnings.append(
            f"{len(comparison.only_in_base)} cells only in base and "
            f"{len(comparison.only_in_new)} only in new were not compared"
        )
    if differs:
        comparison.warnings.append(
            f"{len(differs)} cells ran differently in the two runs and were not compared: "
            + "; ".join(
                f"{d['cell_id']} ({d['base_execution']} → {d['new_execution']})"
                for d in differs[:5]
            )
            + ("; …" if len(differs) > 5 else "")
        )
    hosts = {
        (base[c].host_fingerprint, new[c].host_fingerprint)
        for c in common
        if base[c].host_fingerprint != new[c].host_fingerprint
    }
    same_hardware = not hosts
    if time_verdicts is not None:
        comparison.settings["time_verdicts"] = "paired re-measurement"
    if hosts and time_verdicts is not None:
        comparison.warnings.append(
            "the runs come from different hosts; their times are not compared, the paired "
            "re-measurement on this machine gives the time verdicts"
        )
    elif hosts and not allow_different_hardware:
        comparison.warnings.append(
            "the runs come from different hosts (fingerprints "
            + ", ".join(f"{a} vs {b}" for a, b in sorted(hosts, key=str))
            + "), so time verdicts are inconclusive; pass --allow-different-hardware to judge them"
        )
    elif hosts:
        comparison.warnings.append("the runs come from different hosts; times judged anyway")

    pending: list[tuple[int, float]] = []  # (row index, raw p) for the BH correction
    judge_time = same_hardware or allow_different_hardware
    for cell in common:
        rows = _compare_cell(base[cell], new[cell], judge_time, size_policy, threshold)
        if time_verdicts is not None:
            rows = _paired_time_rows(rows, base[cell], new[cell], time_verdicts.get(cell))
        for row, raw_p in rows:
            if raw_p is not None:
                pending.append((len(comparison.rows), raw_p))
            comparison.rows.append(row)
    mcnemar = sum(comparison.rows[i].metric == PAIRED_QUALITY_METRIC for i, _ in pending)
    comparison.settings["time_tests"] = len(pending) - mcnemar
    comparison.settings["accuracy_tests"] = mcnemar
    _apply_time_verdicts(comparison.rows, pending, threshold, alpha, floor_ms)
    comparison.rows = [_emulated_note(row) for row in comparison.rows]
    return comparison


def match_cells(base: Source, new: Source) -> CellMatch:
    """The cells of `new` compared with `base`: same cell_id (the logical identity: model,
    optimization, profile, threads, scenario, settings; never the artifact's hash) and same
    execution. None in common, or none run the same way, is a UsageError."""
    in_both = [cell for cell in base.records if cell in new.records]
    if not in_both:
        raise UsageError(
            f"{base.path} and {new.path} have no cells in common; compare two runs"
            " of the same suite (or two results of the same tests)"
        )
    differs = []
    for cell in in_both:
        # The same cell_id obtained another way (local, emulated, projected) is another cell.
        (_, before), (_, after) = base.records[cell].cell_key, new.records[cell].cell_key
        if before != after:
            differs.append(
                {
                    "cell_id": cell,
                    "base_execution": before,
                    "new_execution": after,
                    "reason": f"{before} in base, {after} in new: "
                    "figures obtained differently are not compared",
                }
            )
    different = {d["cell_id"] for d in differs}
    common = [cell for cell in in_both if cell not in different]
    if not common:
        first = differs[0]
        raise UsageError(
            f"{base.path} and {new.path} ran none of their {len(in_both)} common "
            f"cells the same way (e.g. {first['cell_id']}: {first['reason']}); compare runs "
            "made the same way (local with local, emulated with emulated, projected with "
            "projected)"
        )
    return CellMatch(
        common,
        differs,
        sorted(set(base.records) - set(new.records)),
        sorted(set(new.records) - set(base.records)),
    )


def load_source(spec: str | Path, store: str | Path | None = None) -> Source:
    """Read one side of a comparison, its kind found from the content.

    ``baseline:NAME`` is looked up in the baseline store; a folder with records.jsonl is a run;
    a folder of pytest-benchmark ``NNNN_*.json`` files (or the storage above one machine's
    folder) gives its latest file; a file is a baseline when its first line is a baseline header,
    a pytest-benchmark file when it is a JSON object with a ``benchmarks`` list, and a run when it
    is a run's records.jsonl. Anything else, missing or corrupt is a one-line UsageError.
    """
    text = str(spec)
    if text.startswith(baselines.PREFIX):
        return _baseline_source(baselines.resolve(text, store), text)
    path = Path(spec)
    if not path.exists():
        raise UsageError(
            f"{path} does not exist; pass a run folder, baseline:NAME, a baseline file or a "
            "pytest-benchmark JSON file"
        )
    if path.is_dir():
        if (path / RECORDS_FILE).is_file():
            return _run_source(path)
        history = pytest_benchmark.history_files(path)
        if history:
            return _pytest_benchmark_source(history[-1])
        raise UsageError(
            f"{path} has no {RECORDS_FILE} and no pytest-benchmark NNNN_*.json files; pass a run "
            "folder written by accelbench bench or run"
        )
    if path.name == RECORDS_FILE:
        return _run_source(path.parent)
    if baselines.is_baseline_file(path):
        return _baseline_source(path, str(path))
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        payload = None
    if pytest_benchmark.looks_like_pytest_benchmark(payload):
        return _pytest_benchmark_source(path)
    raise UsageError(
        f"{path} is neither a run's {RECORDS_FILE}, an accelbench baseline nor a pytest-benchmark"
        " JSON file (or it is corrupt); pass one of those"
    )


def latest_pair(folder: str | Path) -> tuple[Source, Source]:
    """The two latest files of a pytest-benchmark storage folder, as (base, new)."""
    path = Path(folder)
    history = pytest_benchmark.history_files(path) if path.is_dir() else []
    if len(history) < 2:
        raise UsageError(
            f"{path} is not a pytest-benchmark storage folder with two or more runs; give both "
            "BASE and NEW"
        )
    return _pytest_benchmark_source(history[-2]), _pytest_benchmark_source(history[-1])


def _run_source(path: Path) -> Source:
    return Source("run", str(path), f"run `{path}`", _cells(path), root=str(path))


def _baseline_source(path: Path, spec: str) -> Source:
    header, records = baselines.read_baseline(path)
    label = (
        f"baseline `{header.get('name')}` (run {header.get('run_id')}, saved "
        f"{header.get('saved_at')})"
    )
    detail = {k: header.get(k) for k in ("name", "run_id", "saved_at", "source")}
    cells = cells_by_id(records, str(path))
    return Source("baseline", spec, label, cells, detail, root=str(path.parent))


def _pytest_benchmark_source(path: Path) -> Source:
    payload = pytest_benchmark.read_file(path)
    records = pytest_benchmark.to_records(payload, path)
    version, when = payload.get("version"), payload.get("datetime")
    label = f"pytest-benchmark `{path}` (version {version}, {when})"
    detail = {
        "version": version,
        "datetime": when,
        "commit": (payload.get("commit_info") or {}).get("id"),
    }
    return Source("pytest-benchmark", str(path), label, cells_by_id(records, str(path)), detail)


def check_fail_on(fail_on: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The verdicts of --fail-on as a tuple; UsageError when one is not a verdict."""
    unknown = [v for v in fail_on if v not in VERDICTS]
    if unknown:
        raise UsageError(
            f"--fail-on {','.join(unknown)} is not a verdict; use some of {', '.join(VERDICTS)}"
        )
    return tuple(fail_on)


def exit_code(comparison: Comparison, fail_on: tuple[str, ...] | list[str] = ("regressed",)) -> int:
    """1 when any row's verdict is in fail_on, else 0 (the CLI uses 2 for a UsageError)."""
    fail_on = check_fail_on(fail_on)
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


def _cells(run_dir: str | Path) -> dict[str, Record]:
    return cells_by_id(load_run(run_dir), str(run_dir))


def cells_by_id(records: list[Any], run_dir: str) -> dict[str, Record]:
    """Records by cell_id; a resumed cell's later record replaces the earlier one."""
    cells: dict[str, Record] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not isinstance(record.get("cell_id"), str):
            raise UsageError(
                f"record {number} of {run_dir} has no cell_id; the records file is corrupt or not"
                " accelbench's"
            )
        try:
            cells[record["cell_id"]] = Record.parse(record, f"record {number} of {run_dir}")
        except ValueError as err:
            raise UsageError(f"{err}; re-run it") from None
    if not cells:
        raise UsageError(f"{run_dir} has no records; pass a run folder with finished cells")
    return cells


def _compare_cell(
    base: Record,
    new: Record,
    judge_time: bool,
    size_policy: str = "exact",
    threshold: float = 0.05,
) -> list[tuple[MetricComparison, float | None]]:
    """Rows of one cell, each with its raw Mann–Whitney or McNemar p when it awaits BH."""
    sha_changed = base.artifact_sha256 != new.artifact_sha256
    cell = base.cell_id
    canary = canary_ratio(base, new)
    execution = base.execution_label
    out: list[tuple[MetricComparison, float | None]] = []
    if base.status != new.status:
        verdict = "unchanged"
        if base.status == "ok" and new.status in ("failed", "invalid"):
            verdict = "regressed"
        elif new.status == "ok" and base.status in ("failed", "invalid"):
            verdict = "improved"
        row = MetricComparison(
            cell,
            "status",
            "",
            "",
            None,
            None,
            None,
            None,
            None,
            None,
            verdict,
            sha_changed,
            f"{base.status} → {new.status}",
            canary,
            execution,
        )
        out.append((row, None))
    base_metrics = base.metrics or {}
    new_metrics = new.metrics or {}
    for name in sorted(set(base_metrics) & set(new_metrics)):
        b, n = base_metrics[name], new_metrics[name]
        direction = b.direction
        bv, nv = b.value, n.value
        if direction not in ("lower", "higher") or bv is None or nv is None:
            continue
        ratio = nv / bv if bv else None
        row = dict(
            cell_id=cell,
            metric=name,
            unit=b.unit,
            direction=direction,
            base=bv,
            new=nv,
            ratio=ratio,
            ci_low=None,
            ci_high=None,
            p_value=None,
            verdict=INFO,
            sha_changed=sha_changed,
            canary_ratio=canary,
            execution=execution,
        )
        raw_p = None
        better = (nv < bv) if direction == "lower" else (nv > bv)
        worse = (nv > bv) if direction == "lower" else (nv < bv)
        bits = _paired_bits(base, new) if name == PAIRED_QUALITY_METRIC else None
        if name in SIZE_METRICS:
            counts = size_policy == "exact" or (ratio is not None and abs(ratio - 1) > threshold)
            row["verdict"] = (
                "regressed"
                if worse and counts
                else "improved"
                if better and counts
                else "unchanged"
            )
        elif bits is not None:
            b, c = bits
            if b == c == 0:
                row.update(verdict="unchanged", note="identical predictions")
            else:
                raw_p = mcnemar_exact(b, c)
                row.update(verdict="pending", note=f"McNemar b={b} c={c}")
        elif name == PROJECTED_METRIC:
            row.update(
                base_band=band_cell(base, name),
                new_band=band_cell(new, name),
                note=_projected_note(base, new),
            )
        elif name in QUALITY_METRICS:
            changed = abs(nv - bv) > QUALITY_TOLERANCE
            row["verdict"] = "unchanged" if not changed else "regressed" if worse else "improved"
        elif name == TESTED_TIME_METRIC and OFFLINE in (base.scenario, new.scenario):
            # One Offline query's "latencies" are completion times within the run: their median
            # is about half the run's length, set by LoadGen's sample count, not a request's wait.
            row["note"] = "Offline: completion times, not request latencies; see qps"
        elif name == TESTED_TIME_METRIC:
            raw_b = base.raw_latencies_ms or []
            raw_n = new.raw_latencies_ms or []
            if not judge_time:
                row.update(verdict="inconclusive", note="different hardware")
            elif not raw_b or not raw_n:
                row.update(verdict="inconclusive", note="no raw timings")
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


def _projected_note(base: Record, new: Record) -> str:
    """Why a projected latency gets no verdict, and whether its two bands could tell the sides
    apart: the per-op model's estimates are never measured, and each is only known to within
    its band (from the published figures the model was checked on)."""
    note = "projected, never measured: not judged"
    (low_b, high_b), (low_n, high_n) = (
        record.projected_band[0] or (None, None) for record in (base, new)
    )
    if low_b is None or low_n is None:
        return f"{note}; unchecked, no band to compare"
    if low_n <= high_b and low_b <= high_n:
        return f"{note}; the bands overlap, so the model cannot tell the two apart"
    faster = "faster" if high_n < low_b else "slower"
    return f"{note}; the bands do not overlap (new projected {faster})"


def _emulated_note(row: MetricComparison) -> MetricComparison:
    """An emulated cell's time row says whose speed its verdict is about."""
    if row.execution != "emulated" or row.metric not in (TESTED_TIME_METRIC, *THROUGHPUT_METRICS):
        return row
    label = "emulated: this host under the device's limits, not the device"
    return _replace(row, note="; ".join(n for n in (row.note, label) if n))


def _paired_time_rows(
    rows: list[tuple[MetricComparison, float | None]],
    base: Record,
    new: Record,
    paired: dict[str, Any] | None,
) -> list[tuple[MetricComparison, float | None]]:
    """A cell's rows when its times were re-measured paired: the recorded latency and throughput
    shown for information only, and one `rerun_time_ratio` row with the re-measured verdict."""
    time_metrics = (TESTED_TIME_METRIC, *THROUGHPUT_METRICS)
    out = []
    for row, raw_p in rows:
        # Both sides now run on this machine together: the runs' canaries no longer matter.
        row = _replace(row, canary_ratio=None)
        if row.metric in time_metrics:
            note = row.note if row.note.startswith("Offline") else ""
            note = "; ".join(n for n in (note, "recorded; times judged by rerun_time_ratio") if n)
            row, raw_p = _replace(row, verdict=INFO, note=note, ci_low=None, ci_high=None), None
        out.append((row, raw_p))
    if paired is None:
        return out
    measured = "reason" not in paired
    row = MetricComparison(
        base.cell_id,
        "rerun_time_ratio",
        "x",
        "lower",
        paired.get("base_p50_ms") if measured else None,
        paired.get("new_p50_ms") if measured else None,
        paired.get("ratio") if measured else None,
        paired.get("ci_low") if measured else None,
        paired.get("ci_high") if measured else None,
        None,
        paired["verdict"] if measured else "inconclusive",
        base.artifact_sha256 != new.artifact_sha256,
        f"re-measured paired, {paired.get('pairs')} pairs; base/new: p50 ms"
        if measured
        else f"not re-measured: {paired['reason']}",
        None,
        base.execution_label,
    )
    return [*out, (row, None)]


def canary_ratio(base: Record, new: Record) -> float | None:
    """new/base of the records' machine-speed canaries (mean of before and after each), or None
    unless both carry one with positive times."""
    before = base.canary.mean_ms if base.canary else None
    after = new.canary.mean_ms if new.canary else None
    if before is None or after is None:
        return None
    return after / before


def machine_moved(canary: float | None, threshold: float) -> bool:
    """True when the canary ratio lies outside [1/(1+t/2), 1+t/2]: the machine's speed changed."""
    if canary is None:
        return False
    band = 1.0 + threshold / 2.0
    return not 1.0 / band <= canary <= band


def _paired_bits(base: Record, new: Record) -> tuple[int, int] | None:
    """McNemar's discordant counts (b: only base right, c: only new right), or None when the
    two records do not both carry per-example outcomes of one evaluation set."""
    bits = [base.correct_bits or "", new.correct_bits or ""]
    if not all(bits) or len(bits[0]) != len(bits[1]):
        return None
    if set(bits[0] + bits[1]) - {"0", "1"}:
        return None
    b = sum(x == "1" and y == "0" for x, y in zip(bits[0], bits[1], strict=True))
    c = sum(x == "0" and y == "1" for x, y in zip(bits[0], bits[1], strict=True))
    return b, c


def _apply_time_verdicts(
    rows: list[MetricComparison],
    pending: list[tuple[int, float]],
    threshold: float,
    alpha: float,
    floor_ms: float,
) -> None:
    """Latency and McNemar verdicts after one BH correction, then throughput verdicts."""
    rejected = benjamini_hochberg([p for _, p in pending], alpha)
    # cell_id -> +1 slower, -1 faster, for latency verdicts that passed test, threshold and floor.
    judged: dict[str, int] = {}
    for (index, p), reject in zip(pending, rejected, strict=True):
        r = rows[index]
        if r.metric == PAIRED_QUALITY_METRIC:
            # A significant paired difference is the verdict: accuracy has no noise floor.
            worse = r.new < r.base if r.direction == "higher" else r.new > r.base
            verdict = ("regressed" if worse else "improved") if reject else "unchanged"
            note = r.note + ("" if reject else f", not significant at alpha {alpha} after BH")
            rows[index] = _replace(r, p_value=p, verdict=verdict, note=note)
            continue
        change = r.new - r.base
        big = r.ratio is not None and abs(r.ratio - 1.0) > threshold and abs(change) > floor_ms
        verdict = "unchanged"
        note = "" if reject or not big else f"not significant at alpha {alpha} after BH"
        if reject and big:
            verdict = "regressed" if change > 0 else "improved"
            if r.ratio is not None and machine_moved(r.canary_ratio, threshold):
                # The machine's speed changed between the runs: judge relative to it.
                relative = r.ratio / r.canary_ratio
                if (relative - 1.0) * change > 0 and abs(relative - 1.0) > threshold:
                    note = (
                        f"×{relative:.2f} relative to the machine's speed "
                        f"(canary ×{r.canary_ratio:.2f})"
                    )
                else:
                    verdict = "inconclusive"
                    note = (
                        f"machine speed changed ×{r.canary_ratio:.2f} (canary); latency "
                        f"×{r.ratio:.2f} follows it"
                    )
        if verdict in ("regressed", "improved"):
            judged[r.cell_id] = 1 if change > 0 else -1
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
            if machine_moved(r.canary_ratio, threshold):
                note += f"; machine speed changed ×{r.canary_ratio:.2f} (canary)"
        rows[index] = _replace(r, verdict=verdict, note=note)


def _replace(row: MetricComparison, **changes: Any) -> MetricComparison:
    return MetricComparison(**{**asdict(row), **changes})


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
