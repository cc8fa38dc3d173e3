"""A roofline per profile: each artifact placed by its graph's FLOPs per byte and the FLOP rate
its single-stream latency implies."""

from __future__ import annotations

from typing import Any

from accelbench.records import Record
from accelbench.report.document import Document
from accelbench.report.sections.context import Context, num
from accelbench.report.tradeoffs import device_latency

title = "Roofline"


def _roofline_points(records: list[Record], profile: str) -> list[Any]:
    from accelbench.report.plots import RooflinePoint

    out = []
    for r in records:
        if r.profile != profile or r.scenario != "single-stream" or r.status != "ok":
            continue
        graph = r.graph
        if graph is None or not graph.flops or not graph.memory_bytes:
            continue
        # An emulated cell ran at this host's speed, not the device's: on the device's roof only
        # its projection belongs.
        latency, how, _ = device_latency(r)
        kind = "projected" if how == "projected" else "measured"
        if not latency:
            continue
        # The peak a projection used (an int8 model on a device with no int8 peak runs at fp32).
        precision = (r.projection or {}).get("precision") or graph.precision
        out.append(
            RooflinePoint(
                model=str(r.model),
                optimization=str(r.optimization),
                intensity=graph.arithmetic_intensity,
                gflops=graph.flops / (latency / 1e3) / 1e9,
                kind=kind,
                precision=str(precision or ""),
            )
        )
    return out


def render(doc: Document, ctx: Context) -> None:
    records, profiles = ctx.records, ctx.profiles
    from accelbench.report.plots import roofline_png

    names = [p for p in dict.fromkeys(r.profile for r in records) if p]
    plotted: list[tuple[str, Any, list[Any], dict[str, float], float]] = []
    missing: list[str] = []
    for name in names:
        pts = _roofline_points(records, name)
        if not pts:
            continue
        data = profiles[name].data if name in profiles else None
        peaks = {k: v * 1e3 for k, v in ((data or {}).get("peak_compute") or {}).items()}
        bandwidth = (data or {}).get("memory_bandwidth_gbps")
        if not peaks or not bandwidth:
            why = (
                profiles[name].origin
                if data is None
                else (
                    "it states no peak_compute or no memory_bandwidth_gbps"
                    + (
                        " (run accelbench profiles calibrate before the run)"
                        if name == "host"
                        else ""
                    )
                )
            )
            missing.append(f"{name}: no roofline, {why}.")
            continue
        plotted.append((name, data, pts, peaks, bandwidth))
    if not plotted and not missing:
        return
    doc.heading(2, title)
    doc.para(
        "Attainable performance = min(peak compute, arithmetic intensity × memory bandwidth), "
        "from each profile's peak figures (a calibrated host: measured by accelbench "
        "calibrate). Each artifact sits at its graph's FLOPs per byte of weights and "
        "activations, at the FLOP rate its single-stream latency implies (graph FLOPs / "
        "latency). Filled markers: measured p50 on this host; hollow: projected latency "
        "(the per-op device model's estimate, its band in the tables), never measured."
    )
    for name, data, pts, peaks, bandwidth in plotted:
        how = {
            "local": "measured",
            "emulated": "emulated here; points projected",
            "projected": "projected",
        }.get(str(data.get("execution")), "")
        device = str(data.get("model", ""))
        device = device if len(device) <= 70 else device[:67] + "..."
        figure_title = f"{name}: roofline, {how}\n{device}"
        doc.heading(3, f"{name} roofline")
        png = roofline_png(figure_title, peaks, bandwidth, pts)
        doc.image(f"{name}_roofline", png, f"{name} roofline")
        rows = []
        for p in pts:
            roof = peaks.get(p.precision) or peaks.get("fp32") or max(peaks.values())
            attainable = min(roof, p.intensity * bandwidth)
            bound = "memory" if p.intensity * bandwidth < roof else "compute"
            rows.append(
                [
                    p.model,
                    p.optimization,
                    p.precision,
                    f"{p.intensity:.3g}",
                    num(p.gflops),
                    num(attainable),
                    f"{p.gflops / attainable:.2%}",
                    bound,
                    p.kind,
                ]
            )
        doc.table(
            [
                "model",
                "optimization",
                "precision",
                "FLOP/byte",
                "achieved GFLOP/s",
                "attainable GFLOP/s",
                "of attainable",
                "bound",
                "latency",
            ],
            rows,
        )
    doc.bullets(missing)
