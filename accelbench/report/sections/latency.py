"""Latency distributions: empirical CDFs of the raw per-query latencies LoadGen timed."""

from __future__ import annotations

from accelbench.report.document import Document
from accelbench.report.sections.context import Context, models

title = "Latency distributions"


def render(doc: Document, ctx: Context) -> None:
    from accelbench.benchmarks.presets import SCENARIOS as LOADGEN_SCENARIOS
    from accelbench.report.plots import CdfPanel, CdfSeries, latency_cdf_png
    from accelbench.stats import summarize_latencies

    timed = [
        r
        for r in ctx.records
        if r.scenario in LOADGEN_SCENARIOS and r.raw_latencies_ms and r.status in ("ok", "invalid")
    ]
    if not timed:
        return
    doc.heading(2, title)
    doc.para(
        "Empirical CDF of every query's latency as LoadGen timed it (its trace), one figure per "
        "model and scenario, one panel per profile and thread count, one curve per optimization. "
        "Percentiles below are computed from the same raw latencies (linear interpolation), so "
        "they can differ slightly from LoadGen's nearest-rank summary."
    )
    # fmt: skip below: 9 names packed as a paragraph, not one per line.
    header = ["optimization", "where", "status", "queries", "p50 ms", "p90 ms", "p99 ms",
              "p99.9 ms", "max ms"]  # fmt: skip
    for model in models(timed):
        for scenario in LOADGEN_SCENARIOS:
            group = [r for r in timed if r.model == model and r.scenario == scenario]
            if not group:
                continue
            panels: dict[str, CdfPanel] = {}
            rows = []
            for r in group:
                raw = r.raw_latencies_ms or []
                panel = panels.setdefault(r.where, CdfPanel(r.where))
                panel.series.append(CdfSeries(str(r.optimization), raw))
                s = summarize_latencies(raw)
                figures = [f"{s[k]:.4g}" for k in ("p50", "p90", "p99", "p999", "max")]
                rows.append(
                    [str(r.optimization), r.where, str(r.status), str(s["count"]), *figures]
                )
            doc.heading(3, f"{model}, {scenario}")
            png = latency_cdf_png(f"{model}, {scenario}: latency CDF", list(panels.values()))
            doc.image(f"{model}_{scenario}_cdf", png, f"{model} {scenario} latency CDF")
            if scenario == "offline":
                doc.para(
                    "Offline issues every sample at once, so these are completion times within "
                    "the run (queueing included), not the latency one request would see."
                )
            doc.table(header, rows)
