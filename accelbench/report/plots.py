"""The report's figures as PNG bytes: latency CDFs, Pareto fronts,
roofline plots and the history's trend plots.

Each function takes plain data (no records) and draws one figure with matplotlib's Agg backend,
imported when a figure is drawn, so that importing the report costs nothing.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

# How each way of obtaining a figure is drawn: filled markers for measurements, hollow for
# device-model estimates, so a projected point never passes for a measured one.
KIND_STYLES = {
    "measured": {"filled": True, "text": "measured on this host"},
    "emulated": {"filled": True, "text": "emulated (this host under the device's limits)"},
    "projected": {"filled": False, "text": "projected (device model estimate, not measured)"},
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
# Points of a CDF drawn per series: enough for a smooth curve, few enough for a small PNG.
_CDF_POINTS = 1500


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, tight: bool = True) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _quiet_minor_ticks(ax: Any) -> None:
    """No labels on minor ticks of log axes spanning many decades: unreadable there, and laying
    them out is most of a figure's cost."""
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


@dataclass
class CdfSeries:
    """One cell's raw per-query latencies, named by what differs between the panel's series."""

    name: str
    latencies_ms: list[float]


@dataclass
class CdfPanel:
    """One axis of a CDF figure: the cells that share a profile, thread count and execution."""

    title: str
    series: list[CdfSeries] = field(default_factory=list)


def latency_cdf_png(title: str, panels: list[CdfPanel]) -> bytes | None:
    """Empirical CDFs of per-query latency on a log x-axis, one panel per profile and threads."""
    import numpy as np

    panels = [p for p in panels if any(s.latencies_ms for s in p.series)]
    if not panels:
        return None
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols + 0.6, 3.6 * rows + 0.5), dpi=100, squeeze=False
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        for series in panel.series:
            values = np.sort(np.asarray(series.latencies_ms, dtype=float))
            if values.size == 0:
                continue
            if values.size > _CDF_POINTS:
                # The CDF at evenly spaced fractions, the last one the maximum.
                fractions = np.linspace(0, 1, _CDF_POINTS)
                xs = np.quantile(values, fractions)
                ys = fractions
            else:
                xs = values
                ys = np.arange(1, values.size + 1) / values.size
            p50, p99 = np.percentile(values, [50, 99])
            ax.step(
                xs,
                ys,
                where="post",
                linewidth=1.2,
                label=f"{series.name} (n={values.size}, p50 {p50:.3g}, p99 {p99:.3g} ms)",
            )
        for level in (0.5, 0.9, 0.99):
            ax.axhline(level, color="#888", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("latency per query, ms (log)", fontsize=8)
        ax.set_ylabel("fraction of queries ≤ x", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title + " (dotted: p50, p90, p99)", fontsize=10)
    return _png(fig)


@dataclass
class ParetoPoint:
    """One artifact on the quality-latency plane."""

    series: str
    optimization: str
    latency_ms: float
    quality: float
    on_front: bool
    kind: str = "measured"  # how its latency was obtained: a key of KIND_STYLES


# The latency axis of each kind's Pareto plot.
_PARETO_AXES = {
    "measured": "single-stream p50 latency, ms (measured)",
    "emulated": "single-stream p50 latency, ms (this host under the device's limits)",
    "projected": "projected single-stream latency, ms (device model estimate, not measured)",
}


def pareto_pngs(model: str, quality_metric: str, points: list[ParetoPoint]) -> dict[str, bytes]:
    """One Pareto plot per way the latencies were obtained (measured, emulated, projected; those
    present), so that a measurement and an estimate never share an axis: a projected accelerator
    at 1 ms beside host measurements at 0.02 ms would squeeze the measured points into a corner.
    """
    kinds = dict.fromkeys([*KIND_STYLES, *(p.kind for p in points)])
    out = {}
    for kind in kinds:
        group = [p for p in points if p.kind == kind]
        png = pareto_png(model, quality_metric, group) if group else None
        if png:
            out[kind] = png
    return out


def pareto_png(model: str, quality_metric: str, points: list[ParetoPoint]) -> bytes | None:
    """Quality against latency for points obtained one way, one series per profile, each series'
    Pareto front dashed; points of several kinds are refused (split them with pareto_pngs)."""
    if not points:
        return None
    kinds = list(dict.fromkeys(p.kind for p in points))
    if len(kinds) > 1:
        raise ValueError(
            f"a Pareto plot shows latencies obtained one way, not {' and '.join(kinds)}: "
            "draw them with pareto_pngs, one plot per kind"
        )
    kind = kinds[0]
    filled = KIND_STYLES.get(kind, KIND_STYLES["projected"])["filled"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(dict.fromkeys(p.series for p in points)):
        colour = colours[i % len(colours)]
        group = [p for p in points if p.series == name]
        ax.scatter(
            [p.latency_ms for p in group],
            [p.quality for p in group],
            label=name,
            facecolors=colour if filled else "none",
            edgecolors=colour,
        )
        front = sorted((p for p in group if p.on_front), key=lambda p: p.latency_ms)
        ax.plot(
            [p.latency_ms for p in front],
            [p.quality for p in front],
            "--",
            color=colour,
            linewidth=1,
        )
        for p in front:
            ax.annotate(
                p.optimization,
                (p.latency_ms, p.quality),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_xlabel(_PARETO_AXES.get(kind, f"single-stream latency, ms ({kind})"))
    ax.set_ylabel(quality_metric)
    ax.set_title(f"{model}, {kind}: quality vs latency (dashed: Pareto front per profile)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


@dataclass
class RooflinePoint:
    """One artifact on a device: its arithmetic intensity and the FLOP rate its latency implies."""

    model: str
    optimization: str
    intensity: float  # FLOP per byte of memory traffic
    gflops: float  # graph FLOPs / latency
    kind: str  # measured | emulated | projected (a key of KIND_STYLES)
    precision: str


def roofline_png(
    title: str,
    peaks_gflops: dict[str, float],
    bandwidth_gbps: float,
    points: list[RooflinePoint],
) -> bytes:
    """Attainable FLOP/s = min(peak, intensity x bandwidth) per precision, log-log, with points.

    Colour is the optimization, marker shape the model, a hollow marker a projected point.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    ridges = {p: peak / bandwidth_gbps for p, peak in peaks_gflops.items()}
    xs = [pt.intensity for pt in points if pt.intensity > 0] + list(ridges.values())
    lo = min([*xs, 1.0]) / 10
    hi = max([*xs, 1.0]) * 10
    for i, (precision, peak) in enumerate(sorted(peaks_gflops.items(), key=lambda kv: kv[1])):
        ridge = ridges[precision]
        style = ("-", "--", "-.", ":")[i % 4]
        unit = "GOP/s" if precision == "int8" else "GFLOP/s"
        ax.plot(
            [lo, ridge, hi],
            [lo * bandwidth_gbps, peak, peak],
            style,
            color="#333",
            linewidth=1.4,
            label=f"roof {precision}: {peak:.4g} {unit}, ridge {ridge:.3g} FLOP/B",
        )
        ax.annotate(
            f"{precision} ridge",
            (ridge, peak),
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
        )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    optimizations = list(dict.fromkeys(pt.optimization for pt in points))
    models = list(dict.fromkeys(pt.model for pt in points))
    for pt in points:
        colour = colours[optimizations.index(pt.optimization) % len(colours)]
        filled = KIND_STYLES.get(pt.kind, KIND_STYLES["projected"])["filled"]
        ax.scatter(
            [pt.intensity],
            [pt.gflops],
            marker=_MARKERS[models.index(pt.model) % len(_MARKERS)],
            s=46,
            facecolors=colour if filled else "none",
            edgecolors=colour,
            linewidths=1.4,
            zorder=3,
        )
    handles = list(ax.get_legend_handles_labels()[0])
    labels = list(ax.get_legend_handles_labels()[1])
    for i, name in enumerate(optimizations):
        handles.append(Line2D([], [], marker="o", linestyle="", color=colours[i % len(colours)]))
        labels.append(f"optimization: {name}")
    for i, name in enumerate(models):
        handles.append(
            Line2D([], [], marker=_MARKERS[i % len(_MARKERS)], linestyle="", color="#555")
        )
        labels.append(f"model: {name}")
    for kind in dict.fromkeys(pt.kind for pt in points):
        filled = KIND_STYLES.get(kind, KIND_STYLES["projected"])["filled"]
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markeredgecolor="#555",
                markerfacecolor="#555" if filled else "none",
            )
        )
        labels.append(KIND_STYLES.get(kind, {"text": kind})["text"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    _quiet_minor_ticks(ax)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity, FLOP per byte (graph FLOPs / weight + activation bytes)")
    ax.set_ylabel("attainable GFLOP/s (GOP/s for int8)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(11, 5)
    # Room for the legend on the right, set by hand: tight_layout would measure every label.
    fig.subplots_adjust(left=0.07, right=0.7, top=0.89, bottom=0.11)
    return _png(fig, tight=False)


def trend_png(
    title: str, run_ids: list[str], values: list[float], cuts: list[int], ylabel: str
) -> bytes:
    """One series across runs, oldest first; a dashed line before each change point's run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=80)
    ax.plot(range(len(values)), values, marker="o", markersize=3, linewidth=1)
    for cut in cuts:
        ax.axvline(cut - 0.5, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(run_ids, rotation=45, ha="right", fontsize=6)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=8)
    return _png(fig)
