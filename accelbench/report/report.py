"""The run report: report.md and a self-contained report.html with the same content.

Sections, each computed from the run's records only: per model the trade-offs (Pareto plot,
recommendations, table); latency distributions (CDFs of the raw per-query latencies); a roofline
per profile; the hardware comparison (throughput per watt and per dollar); the input-pipeline,
training and serving scenarios; and the environment the run was measured in. Every figure says
whether it was measured here, emulated here, or projected.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelbench.benchmarks.paired import DEFAULT_THRESHOLD
from accelbench.records import Environment, Record, as_records, write_atomic
from accelbench.report.tables import LEGEND, markdown_table
from accelbench.report.tradeoffs import (
    Point,
    device_latency,
    paired_records,
    pareto_front,
    points,
    recommendation,
)


def _fmt_ratio(x: float | None) -> str:
    return f"{x:.2f}×" if x else "-"


def _fmt_points(x: float | None) -> str:
    return f"{x * 100:+.2f}" if x is not None else "-"


def tradeoff_rows(pts: list[Point]) -> tuple[list[str], list[list[str]]]:
    header = [
        "optimization",
        "profile",
        "thr",
        "latency ms",
        "kind",
        "speed-up vs fp32",
        "size",
        "smaller than fp32",
        "gzip",
        "gzip smaller than fp32",
        "quality",
        "Δ points",
        "worst class Δ",
        "flagged",
        "IQR/p50",
    ]
    rows = []
    for p in sorted(pts, key=lambda p: (p.label, p.threads, p.latency_ms or 0)):
        rows.append(
            [
                p.optimization,
                p.label,
                str(p.threads),
                f"{p.latency_ms:.4g}" if p.latency_ms is not None else "-",
                p.latency_kind,
                p.speedup.describe() if p.speedup else "-",
                f"{p.model_bytes / 1024:.1f} KiB" if p.model_bytes else "-",
                _fmt_ratio(p.size_ratio_vs_fp32),
                f"{p.model_gzip_bytes / 1024:.1f} KiB" if p.model_gzip_bytes else "-",
                _fmt_ratio(p.gzip_ratio_vs_fp32),
                f"{p.quality:.4f}" if p.quality is not None else "-",
                _fmt_points(p.quality_delta),
                _fmt_points(p.worst_class_delta),
                ", ".join(p.flagged_classes) or "-",
                _spread(p),
            ]
        )
    return header, rows


def _spread(p: Point) -> str:
    """The cell's interquartile range over its median; a wide one says the machine's speed
    varied during the cell, which a paired speed-up is immune to."""
    if p.spread is None:
        return "-"
    text = f"{p.spread:.0%}"
    if p.unstable and p.speedup and p.speedup.source == "paired":
        text += " (speed varied; the speed-up is paired)"
    return text


TRADEOFF_LEGEND = (
    "speed-up vs fp32: 'paired' = both artifacts loaded in one worker and called alternately, "
    "pair by pair in a seeded random order (fp32's time over the optimization's: the "
    "Hodges–Lehmann estimate of the per-pair ratios, its 95% signed-rank interval, and the range "
    "of the per-round medians); faster or slower only when the interval excludes 1 and the "
    f"change exceeds {DEFAULT_THRESHOLD:.0%}. 'separately measured cells' = two single-stream "
    "cells run minutes apart on a machine whose speed drifts: a figure, not evidence of a "
    "difference. Latencies are the isolated single-stream cells'. size: the .tflite file on "
    "disk; gzip: the same file gzip-compressed, which is what pruning and clustering shrink; "
    "each 'smaller than fp32' is fp32's size over the optimization's, as the recommendations "
    "state them."
)
# Below this fp32 time per call, the fixed cost of a call (input copy, interpreter dispatch)
# is a large share of it, and no kernel can shrink that share.
SMALL_CALL_MS = 0.2


def int8_instructions(environment: Environment) -> str:
    """What this CPU offers int8 kernels, from the CPU flags the record's environment lists."""
    flags = set(environment.cpu_flags or [])
    cpu = environment.cpu_model or "this CPU"
    if "amx_int8" in flags:
        vnni = " and AVX-512 VNNI (avx512_vnni)" if "avx512_vnni" in flags else ""
        return (
            f"{cpu} has AMX (amx_int8){vnni}: int8 pays most in kernels that use its int8 "
            "matrix units (on a Sapphire Rapids Xeon with AMX, MobileNet v1 int8 runs 2.7× "
            "faster than fp32), and little in a model whose time is not in large convolutions "
            "and matrix products"
        )
    if "avx512_vnni" in flags:
        return (
            f"{cpu} has AVX-512 VNNI (avx512_vnni) but no AMX: an 8-bit multiply-accumulate is "
            "one instruction, so int8 convolutions and matrix products can beat fp32, without "
            "AMX's matrix units"
        )
    if "avx_vnni" in flags:
        return (
            f"{cpu} has AVX-VNNI (avx_vnni), 256-bit 8-bit multiply-accumulate, but neither "
            "AVX-512 VNNI nor AMX, so int8's advantage over fp32 is modest"
        )
    if "avx2" in flags:
        return (
            f"{cpu} has AVX2 but no VNNI or AMX: an 8-bit multiply-accumulate takes several "
            "instructions, so int8 need not beat fp32 (on an AVX2-only AMD EPYC, LiteRT's own "
            "benchmark tool timed ic_resnet8 int8 slower than fp32)"
        )
    if "asimddp" in flags:
        return f"{cpu} has Arm's int8 dot-product instructions (asimddp), which int8 kernels use"
    if flags & {"neon", "asimd"}:
        return (
            f"{cpu} has NEON but not Arm's int8 dot-product instructions (asimddp), so an 8-bit "
            "multiply-accumulate takes several instructions"
        )
    return (
        "the record lists none of the CPU features int8 kernels use (VNNI, AMX, AVX2, Arm dot "
        "product), so what this CPU offers int8 is unknown"
    )


def int8_note(
    pts: list[Point], records: Iterable[Record | dict[str, Any]], model: str
) -> str | None:
    """int8 against fp32 on the host at 1 thread: the paired ratio (or, without a paired cell,
    the separately measured figure, labelled so), and what limits int8 on this CPU."""
    host1 = {
        p.optimization: p
        for p in pts
        if p.model == model and p.profile == "host" and p.threads == 1
    }
    fp32, int8 = host1.get("fp32"), host1.get("int8")
    if not (fp32 and int8 and int8.speedup):
        return None
    records = as_records(records)
    paired = paired_records(records).get((model, "host", 1, "int8"))
    if paired:
        fp32_ms, int8_ms = paired.metric("base_p50_ms"), paired.metric("new_p50_ms")
        text = (
            f"int8 against fp32 on host, 1 thread, timed pair by pair in one worker: "
            f"{int8.speedup.describe()}; median call {fp32_ms:.4g} ms (fp32), {int8_ms:.4g} ms "
            "(int8)"
        )
    else:
        fp32_ms = fp32.latency_ms
        text = (
            f"int8 against fp32 on host, 1 thread: {int8.speedup.describe()}; p50 "
            f"{fp32.latency_ms:.4g} ms (fp32), {int8.latency_ms:.4g} ms (int8)"
        )
    if int8.quality_delta is not None:
        text += f", {_fmt_points(int8.quality_delta)} points"
    host_records = [r for r in records if r.model == model and r.profile == "host"]
    environment = next((r.environment for r in [paired, *host_records] if r), None)
    limits = [int8_instructions(environment or Environment())]
    accuracy = next(
        (r for r in host_records if r.optimization == "int8" and r.scenario == "accuracy"), None
    )
    float_ops = (accuracy.quality.float_ops if accuracy and accuracy.quality else None) or []
    if float_ops:
        limits.append(f"{len(float_ops)} ops stayed in float ({', '.join(sorted(set(float_ops)))})")
    cell = next((r for r in host_records if r.optimization == "int8" and r.graph), None)
    op_counts = (cell.graph.op_counts if cell and cell.graph else None) or {}
    converts = sum(op_counts.get(op, 0) for op in ("QUANTIZE", "DEQUANTIZE"))
    if converts:
        limits.append(
            f"{converts} of its {sum(op_counts.values())} ops convert between float and int8 "
            "(QUANTIZE/DEQUANTIZE), work fp32 does not do"
        )
    if fp32_ms and fp32_ms < SMALL_CALL_MS:
        limits.append(
            f"the fp32 model already runs in {fp32_ms * 1000:.0f} µs, so the fixed cost of each "
            "call (input copy, interpreter dispatch) is a large share of it, which int8 kernels "
            "cannot shrink"
        )
    return text + ". What bounds int8 here: " + "; ".join(limits) + "."


def recommendations(pts: list[Point]) -> list[tuple[str, str, str]]:
    """(model, where, sentence) for every model, profile and thread count in the points."""
    out = []
    for model in dict.fromkeys(p.model for p in pts):
        model_pts = [p for p in pts if p.model == model]
        for label in dict.fromkeys(p.label for p in model_pts):
            for threads in sorted({p.threads for p in model_pts if p.label == label}):
                group = [p for p in model_pts if p.label == label and p.threads == threads]
                if "projected" in label:
                    where = label
                elif label.endswith(")"):
                    where = f"{label[:-1]}, {threads} thr)"
                else:
                    where = f"{label} ({threads} thr)"
                sentence = recommendation(group, model, label).replace(label, where, 1)
                out.append((model, where, sentence[0].upper() + sentence[1:]))
    return out


def print_recommendations(records: Iterable[Record | dict[str, Any]]) -> None:
    """The recommendation table `accelbench run` ends with."""
    from rich.console import Console
    from rich.table import Table

    rows = recommendations(points(records))
    if not rows:
        return
    table = Table(
        title="Recommendations (latency: single-stream; speed-ups: paired where timed; "
        "full table: accelbench results show)"
    )
    for column in ("model", "where", "recommendation"):
        table.add_column(column, overflow="fold")
    for model, where, sentence in rows:
        table.add_row(model, where, sentence)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


# ---------------------------------------------------------------------------------------------
# The document: every block is written to report.md and report.html together, so they agree.


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class _Doc:
    """report.md and report.html built block by block; PNGs go beside the Markdown."""

    files_dir: Path
    md: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    contents: list[tuple[str, str]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        anchor = _slug(text)
        if any(a == anchor for a, _ in self.contents):
            anchor += f"-{len(self.contents)}"
        if level == 2:
            self.contents.append((anchor, text))
        self.md += ["#" * level + " " + text, ""]
        self.body.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')

    def para(self, text: str, css: str = "") -> None:
        self.md += [text, ""]
        cls = f' class="{css}"' if css else ""
        self.body.append(f"<p{cls}>{html.escape(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        if not items:
            return
        self.md += [f"- {item}" for item in items] + [""]
        self.body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md += [markdown_table(header, rows), ""]
        self.body.append(_html_table(header, rows))

    def image(self, stem: str, png: bytes | None, alt: str) -> None:
        if not png:
            return
        self.files_dir.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) + ".png"
        (self.files_dir / name).write_bytes(png)
        self.md += [f"![{alt}]({self.files_dir.name}/{name})", ""]
        b64 = base64.b64encode(png).decode()
        self.body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">')

    def section_fragment(self, title: str, markdown: str, html_text: str) -> None:
        """A whole section another module renders in both forms, headings included."""
        anchor = _slug(title)
        self.contents.append((anchor, title))
        if markdown:
            self.md += [markdown.rstrip(), ""]
        if html_text:
            self.body.append(f'<div id="{anchor}">{html_text}</div>')


_NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?\s*(×|%|[a-zA-Z/]{1,4})?$")


def _html_cell(text: str) -> str:
    """A table cell; figures align right so their digits line up, words align left."""
    css = ' class="num"' if _NUMBER.match(text) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


# ---------------------------------------------------------------------------------------------
# Small helpers over records.


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return f"{text} {unit}".rstrip()


def _models(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(str(r.model) for r in records))


# ---------------------------------------------------------------------------------------------
# Hardware profiles as the run used them.


@dataclass
class RunProfile:
    """A profile's figures as the run used them, or why they are unknown."""

    name: str
    data: dict[str, Any] | None
    origin: str  # where the figures were read from, or why there are none


def run_profiles(run_dir: Path, records: list[Record]) -> dict[str, RunProfile]:
    """Each profile of the run: from the record, else the cell file the worker got (the exact
    figures of that run, a calibrated host's included), else the built-in profile of that name.
    """
    from accelbench.hardware_profiles import builtin_names, load_profile

    found: dict[str, RunProfile] = {}
    for r in records:
        name = r.profile
        if not name or name in found:
            continue
        if r.profile_data is not None:
            found[name] = RunProfile(name, r.profile_data, "the record")
            continue
        cell_file = run_dir / "cells" / f"{r.parent_cell_id or r.cell_id}.cell.json"
        if cell_file.is_file():
            try:
                data = json.loads(cell_file.read_text(encoding="utf-8")).get("profile_data")
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict):
                found[name] = RunProfile(name, data, f"the run's cell file {cell_file.name}")
                continue
    for r in records:
        name = r.profile
        if not name or name in found:
            continue
        if name in builtin_names():
            data = load_profile(name).model_dump(mode="json")
            found[name] = RunProfile(name, data, "the built-in profile of that name")
        else:
            found[name] = RunProfile(
                name, None, "no cell file in the run folder and no built-in profile of that name"
            )
    return found


# ---------------------------------------------------------------------------------------------
# Latency distributions.


def _cdf_section(doc: _Doc, records: list[Record]) -> None:
    from accelbench.benchmarks.presets import SCENARIOS as LOADGEN_SCENARIOS
    from accelbench.report.plots import CdfPanel, CdfSeries, latency_cdf_png
    from accelbench.stats import summarize_latencies

    timed = [
        r
        for r in records
        if r.scenario in LOADGEN_SCENARIOS and r.raw_latencies_ms and r.status in ("ok", "invalid")
    ]
    if not timed:
        return
    doc.heading(2, "Latency distributions")
    doc.para(
        "Empirical CDF of every query's latency as LoadGen timed it (its trace), one figure per "
        "model and scenario, one panel per profile and thread count, one curve per optimization. "
        "Percentiles below are computed from the same raw latencies (linear interpolation), so "
        "they can differ slightly from LoadGen's nearest-rank summary."
    )
    # fmt: skip below: 9 names packed as a paragraph, not one per line.
    header = ["optimization", "where", "status", "queries", "p50 ms", "p90 ms", "p99 ms",
              "p99.9 ms", "max ms"]  # fmt: skip
    for model in _models(timed):
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


# ---------------------------------------------------------------------------------------------
# Roofline.


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


def _roofline_section(doc: _Doc, records: list[Record], profiles: dict[str, RunProfile]) -> None:
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
    doc.heading(2, "Roofline")
    doc.para(
        "Attainable performance = min(peak compute, arithmetic intensity × memory bandwidth), "
        "from each profile's peak figures (a calibrated host: measured by accelbench "
        "calibrate). Each artifact sits at its graph's FLOPs per byte of weights and "
        "activations, at the FLOP rate its single-stream latency implies (graph FLOPs / "
        "latency). Filled markers: measured p50 on this host; hollow: projected latency "
        "(roofline estimate scaled by this host's efficiency), never measured."
    )
    for name, data, pts, peaks, bandwidth in plotted:
        how = {
            "local": "measured",
            "emulated": "emulated here; points projected",
            "projected": "projected",
        }.get(str(data.get("execution")), "")
        device = str(data.get("model", ""))
        device = device if len(device) <= 70 else device[:67] + "..."
        title = f"{name}: roofline, {how}\n{device}"
        doc.heading(3, f"{name} roofline")
        doc.image(
            f"{name}_roofline", roofline_png(title, peaks, bandwidth, pts), f"{name} roofline"
        )
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
                    _num(p.gflops),
                    _num(attainable),
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


# ---------------------------------------------------------------------------------------------
# Hardware comparison: throughput, per watt and per dollar.


_BASIS_RANK = {"Offline samples/s": 2, "Server completed samples/s": 1}


def _throughput(record: Record) -> tuple[float, str, str] | None:
    """(inferences/s, what it is, measured|emulated|projected) for one benchmark record."""
    execution = record.execution
    scenario = record.scenario
    if execution in ("projected", "emulated"):
        # An emulated cell's own figures are this host's speed; the device's is the projection.
        projected = device_latency(record)[0] if scenario == "single-stream" else None
        if not projected:
            return None
        return 1e3 / projected, "1 / projected latency (batch 1)", "projected"
    qps = record.metric("qps")
    if scenario == "offline" and qps:
        return qps, "Offline samples/s", "measured"
    if scenario == "server" and qps:
        return qps, "Server completed samples/s", "measured"
    p50 = record.latency_p50_ms
    if scenario == "single-stream" and p50:
        return 1e3 / p50, "1 / single-stream p50 (batch 1)", "measured"
    return None


def hardware_rows(
    records: list[Record], profiles: dict[str, RunProfile]
) -> tuple[list[str], list[list[str]]]:
    """Per model and profile (and threads), the best throughput, per watt and per dollar."""
    from accelbench.benchmarks.presets import SCENARIOS as LOADGEN_SCENARIOS

    # fmt: skip below: 11 names packed as a paragraph, not one per line.
    header = ["model", "profile", "thr", "figure", "best optimization", "inferences/s", "basis",
              "TDP W", "inferences/J (per W)", "price $/h", "inferences per $"]  # fmt: skip
    best: dict[tuple[str, str, int], tuple[float, str, str, Record]] = {}
    for r in records:
        if r.status != "ok" or r.scenario not in LOADGEN_SCENARIOS:
            continue
        got = _throughput(r)
        if got is None:
            continue
        key = (str(r.model), str(r.profile), r.threads or 0)
        # Offline is the throughput scenario: where measured it is the figure, else the best of
        # the others; a single-stream 1 / p50 never outranks a measured Offline rate.
        rank = (_BASIS_RANK.get(got[1], 0), got[0])
        if key not in best or rank > (_BASIS_RANK.get(best[key][1], 0), best[key][0]):
            best[key] = (*got, r)
    rows = []
    for (model, name, threads), (rate, basis, kind, r) in best.items():
        data = profiles[name].data if name in profiles else None
        tdp = (data or {}).get("tdp_watts")
        price = (data or {}).get("price_per_hour_usd")
        unknown = None if data else f"n/a: profile figures unknown ({profiles[name].origin})"
        if unknown:
            per_watt = per_dollar = unknown
        else:
            per_watt = _num(rate / tdp) if tdp else f"n/a: profile {name} states no tdp_watts"
            if price is None:
                per_dollar = f"n/a: profile {name} states no price_per_hour_usd"
            elif price == 0:
                per_dollar = "n/a: price_per_hour_usd is 0 (owned hardware?)"
            else:
                per_dollar = _num(rate * 3600 / price)
        rows.append(
            [
                model,
                name,
                str(threads),
                kind,
                str(r.optimization),
                _num(rate),
                basis,
                _num(tdp) if tdp else "n/a",
                per_watt,
                f"{price:g}" if price is not None else "n/a",
                per_dollar,
            ]
        )
    rows.sort(key=lambda row: (row[0], row[1], int(row[2])))
    return header, rows


def _hardware_section(doc: _Doc, records: list[Record], profiles: dict[str, RunProfile]) -> None:
    header, rows = hardware_rows(records, profiles)
    if not rows:
        return
    doc.heading(2, "Hardware comparison")
    doc.para(
        "Per model and profile, the highest throughput in the run (Offline samples/s where "
        "measured, else 1 / single-stream p50), divided by the profile's TDP (inferences per "
        "joule at full rated power: an upper bound on energy, not a measurement of it) and "
        "priced per hour (inferences per dollar). Emulated and projected devices use their "
        "projected latency: an emulated cell's own figures are this host's speed, not the "
        "device's. n/a says which figure a profile lacks; nothing is assumed in its place."
    )
    doc.table(header, rows)
    notes = []
    for name in dict.fromkeys(row[1] for row in rows):
        data = profiles[name].data or {}
        for source in data.get("sources") or []:
            if source.get("figure") in ("tdp_watts", "price_per_hour_usd"):
                cited = str(source.get("url_or_citation") or "")
                cited = cited if len(cited) <= 160 else cited[:157] + "..."
                notes.append(f"{name} {source['figure']}: {source.get('value')} ({cited})")
        notes.append(f"{name}: figures from {profiles[name].origin}.")
    doc.bullets(notes)


# ---------------------------------------------------------------------------------------------
# Input pipeline.


def _is_input_bound_record(record: Record) -> bool:
    return record.configuration_key == "input_bound" or "input_bound" in (record.settings or {})


def input_bound_sentences(record: Record) -> list[str]:
    """The input-bound verdict of one input_bound record, then one line per format measured."""
    settings = record.settings or {}
    verdict = settings.get("input_bound")
    if record.status != "ok" or verdict is None:
        return [f"No input-bound verdict: {record.error or 'the check did not run'}."]
    step = record.metric("train_step_examples_per_s")
    factor = record.metric("input_bound_factor")
    figures = (
        f"the training step consumes {_num(step)} examples/s; the naive {settings.get('format')} "
        f"pipeline delivers {_num(record.metric('naive_pipeline_examples_per_s'))}"
        + (f" (step / naive = {factor:.3g})" if factor is not None else "")
        + f", the best ({settings.get('best_pipeline')}) "
        f"{_num(record.metric('best_pipeline_examples_per_s'))}"
    )
    fixed_by = settings.get("fixed_by")
    if not verdict:
        lines = [f"Not input-bound: {figures}."]
    elif fixed_by:
        lines = [f"Input-bound: {figures}; the least change that removes it: {fixed_by}."]
    else:
        lines = [f"Input-bound: {figures}; no measured configuration keeps up with the step."]
    for fmt, v in (settings.get("per_format") or {}).items():
        if not isinstance(v, dict):
            continue
        state = "input-bound" if v.get("input_bound") else "not input-bound"
        fix = v.get("fixed_by")
        lines.append(
            f"{fmt}: naive {_num(v.get('naive_pipeline_examples_per_s'))} examples/s → {state}"
            + (f", removed by {fix}" if v.get("input_bound") and fix else "")
            + (", no configuration keeps up" if v.get("input_bound") and not fix else "")
        )
    return lines


def _pipeline_section(doc: _Doc, records: list[Record]) -> None:
    group_all = [r for r in records if r.scenario == "input-pipeline"]
    if not group_all:
        return
    doc.heading(2, "Input pipeline")
    doc.para(
        "tf.data pipelines reading the model's data from each storage format; examples/s and "
        "MB/s (bytes read from storage) per configuration, warm-up excluded; speed-up against "
        "the naive (sequential, unprefetched) pipeline of the same format."
    )
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in group_all:
        groups.setdefault((str(r.model), r.where), []).append(r)
    for (model, where), group in groups.items():
        doc.heading(3, f"{model} ({where})")
        verdicts = [r for r in group if _is_input_bound_record(r)]
        configs = [r for r in group if _setting(r, "format") and r not in verdicts]
        others = [r for r in group if r not in configs and r not in verdicts]
        formats = list(dict.fromkeys(_setting(r, "format") for r in configs))
        summary = []
        for fmt in formats:
            rows = [r for r in configs if _setting(r, "format") == fmt]
            best = _best_pipeline(rows)
            naive = next((r for r in rows if _ran(r) and _setting(r, "pipeline") == "naive"), None)
            if best is None:
                reason = next((r.error for r in rows if r.error), "no result")
                summary.append([fmt, "-", "-", "-", "-", reason or "-"])
                continue
            summary.append(
                [
                    fmt,
                    str(_setting(best, "pipeline")),
                    _num(best.metric("examples_per_s")),
                    _num(naive.metric("examples_per_s")) if naive else "-",
                    _ratio(best.metric("speedup_vs_naive")),
                    "",
                ]
            )
        if summary:
            doc.para("Best configuration per format:")
            doc.table(
                [
                    "format",
                    "best pipeline",
                    "examples/s",
                    "naive examples/s",
                    "speed-up vs naive",
                    "why none",
                ],
                summary,
            )
        for r in verdicts:
            first, *per_format = input_bound_sentences(r)
            doc.para(first, css="verdict")
            doc.bullets(per_format)
        for fmt in formats:
            rows = [r for r in configs if _setting(r, "format") == fmt]
            best = _best_pipeline(rows)
            table = []
            for r in rows:
                table.append(
                    [
                        str(_setting(r, "pipeline") or "-"),
                        r.status or "",
                        _num(r.metric("examples_per_s")),
                        _num(r.metric("mb_per_s")),
                        _ratio(r.metric("speedup_vs_naive")),
                        "best" if r is best else "",
                        _stages(_setting(r, "stage_ms_per_example")),
                        str(r.error or ""),
                    ]
                )
            doc.heading(4, f"{model}: {fmt}")
            doc.table(
                [
                    "pipeline",
                    "status",
                    "examples/s",
                    "MB/s",
                    "speed-up vs naive",
                    "best",
                    "ms per example by stage",
                    "error",
                ],
                table,
            )
        for r in others:
            doc.para(f"{r.configuration_key}: {r.status} {r.error or ''}".strip())


def _setting(record: Record, name: str) -> Any:
    return (record.settings or {}).get(name)


def _ran(record: Record) -> bool:
    """An ok configuration that measured a throughput."""
    return record.status == "ok" and bool(record.metric("examples_per_s"))


def _best_pipeline(rows: list[Record]) -> Record | None:
    """The configuration with the highest examples/s among those that ran."""
    return max(
        (r for r in rows if _ran(r)), key=lambda r: r.metric("examples_per_s") or 0.0, default=None
    )


def _stages(stages: Any) -> str:
    """Milliseconds per example by stage, in pipeline order (records store keys sorted)."""
    if not isinstance(stages, dict):
        return "-"
    from accelbench.benchmarks.input_pipeline import STAGES

    ordered = sorted(stages, key=lambda k: STAGES.index(k) if k in STAGES else len(STAGES))
    return ", ".join(f"{k} {stages[k]:.3g}" for k in ordered)


def _ratio(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "-"


# ---------------------------------------------------------------------------------------------
# Training benchmark.

_TRAINING_METRICS = (
    ("step_time_ms", "step ms"),
    ("examples_per_s", "examples/s"),
    ("compile_s", "compile s"),
    ("time_to_target_s", "time to target s"),
    ("failed_runs", "failed runs"),
    ("scaling_efficiency", "scaling efficiency"),
)


def _is_training_benchmark(record: Record) -> bool:
    # The preparation step's records are scenario 'training' too; the benchmark's carry a
    # framework setting.
    return record.scenario == "training" and "framework" in (record.settings or {})


def _training_section(doc: _Doc, records: list[Record]) -> None:
    bench = [r for r in records if _is_training_benchmark(r)]
    if not bench:
        return
    doc.heading(2, "Training")
    doc.para(
        "Training configurations in the MLPerf Training way: several seeds each, step time "
        "without the first (compile) steps, time to the quality target averaged after dropping "
        "the fastest and the slowest run. Scaling efficiency = throughput on N devices / "
        "(N × throughput on 1); 1.0 is linear."
    )
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in bench:
        groups.setdefault((str(r.model), r.where), []).append(r)
    for (model, where), group in groups.items():
        doc.heading(3, f"{model} ({where})")
        present = [
            (m, h) for m, h in _TRAINING_METRICS if any(r.metric(m) is not None for r in group)
        ]
        header = [
            "configuration",
            "framework",
            "strategy",
            "precision",
            "XLA",
            "devices",
            "status",
            *(h for _, h in present),
            "error",
        ]
        rows = []
        for r in group:
            s = r.settings or {}
            rows.append(
                [
                    r.configuration_key,
                    str(s.get("framework")),
                    str(s.get("strategy")),
                    str(s.get("precision")),
                    str(s.get("xla")),
                    str(s.get("devices")),
                    r.status or "",
                    *(_num(r.metric(m)) for m, _ in present),
                    str(r.error or ""),
                ]
            )
        doc.table(header, rows)
        scaling = []
        for r in group:
            eff = r.metric("scaling_efficiency")
            if eff is None:
                continue
            s = r.settings or {}
            line = (
                f"{s.get('framework')} {s.get('strategy')} {s.get('precision')} on "
                f"{s.get('devices')} devices: "
                f"scaling efficiency {eff:.2f}"
            )
            note = s.get("notes") or getattr(r, "notes", None)
            scaling.append(line + (f" — {note}" if note else ""))
        if scaling:
            doc.para("Scaling:")
            doc.bullets(scaling)


# ---------------------------------------------------------------------------------------------
# Serving (rendered by the serving module, when it is installed).


def _serving_section(doc: _Doc, records: list[Record]) -> None:
    from accelbench.report import serving as serving_report

    # The serving module picks its own records (those with a latency-throughput curve: the
    # serving scenario's modes, and accelbench load's peak searches); it reads them as dicts.
    served = [r.to_dict() for r in records]
    markdown = serving_report.serving_markdown(served)
    fragment = serving_report.serving_html(served)
    if markdown or fragment:
        doc.section_fragment("Serving", markdown, fragment)


# ---------------------------------------------------------------------------------------------
# Environment.


def environment_rows(env: Environment) -> list[list[str]]:
    """The fingerprint of the machine and software a run was measured on, one row per fact."""
    packages = env.packages or {}
    installed = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v)
    absent = ", ".join(k for k, v in sorted(packages.items()) if not v)
    cores = (
        f"{env.logical_cores} logical, {env.physical_cores} physical, "
        f"{env.available_cores} available to the run"
    )
    memory = f"{env.memory_total_gb} GB"
    if env.memory_cgroup_limit_gb:
        memory += f" (cgroup limit {env.memory_cgroup_limit_gb} GB)"
    gpus = "; ".join(
        f"{g.get('name')} (driver {g.get('driver')}, {g.get('memory_mib')} MiB)"
        for g in env.gpus or []
    )
    commit = env.git_commit
    if commit and env.git_dirty:
        commit += " (with uncommitted changes)"
    rows = [
        ["CPU", f"{env.cpu_model} ({env.cpu_vendor}, {env.machine})"],
        ["CPU flags", ", ".join(env.cpu_flags or []) or "-"],
        ["cores", cores],
        ["memory", memory],
        ["GPUs", gpus or "none"],
        ["OS", f"{env.os_release or env.os}, kernel {env.kernel}"],
        ["Python", f"{env.python} ({env.python_implementation})"],
        ["packages", installed or "-"],
        ["not installed", absent or "-"],
        ["git commit", commit or "not in a git checkout"],
        ["host fingerprint", str(env.host_fingerprint_id)],
    ]
    return rows


def _environment_section(doc: _Doc, records: list[Record]) -> None:
    envs: dict[str, tuple[Environment, int]] = {}
    for r in records:
        env = r.environment or Environment()
        key = json.dumps(env.to_dict(), sort_keys=True)
        envs[key] = (env, envs.get(key, (env, 0))[1] + 1)
    envs = {k: v for k, v in envs.items() if v[0].to_dict()}
    if not envs:
        return
    doc.heading(2, "Environment")
    if len(envs) > 1:
        doc.para(
            f"This run's records come from {len(envs)} different environments (a run resumed "
            "elsewhere, or software changed between cells): compare figures only within one."
        )
    for env, count in envs.values():
        if len(envs) > 1:
            doc.heading(3, f"{env.host_fingerprint_id}: {count} records")
        doc.table(["", "value"], environment_rows(env))


# ---------------------------------------------------------------------------------------------
# The report.


def _summary(doc: _Doc, records: list[Record]) -> None:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status or "?"] = counts.get(r.status or "?", 0) + 1
    by_execution: dict[str, int] = {}
    for r in records:
        by_execution[r.execution or "?"] = by_execution.get(r.execution or "?", 0) + 1
    presets = sorted({str(_setting(r, "preset")) for r in records if _setting(r, "preset")})
    text = (
        f"{len(records)} records ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + "); "
        + ", ".join(f"{n} {e}" for e, n in sorted(by_execution.items()))
        + (f"; preset {', '.join(presets)}" if presets else "")
        + "."
    )
    doc.para(text)
    from accelbench.benchmarks.presets import comparability_note

    note = comparability_note([r.settings or {} for r in records])
    if note:
        doc.para(note)


def _tradeoff_sections(doc: _Doc, records: list[Record], pts: list[Point]) -> None:
    from accelbench.report.plots import ParetoPoint, pareto_png

    for model in _models(records):
        model_pts = [p for p in pts if p.model == model]
        if not model_pts:
            continue
        doc.heading(2, model)
        training = next(
            (
                r.training
                for r in records
                if r.model == model and r.scenario == "training" and r.status == "ok" and r.training
            ),
            None,
        )
        if training:
            t = training
            doc.para(
                f"Trained {t['epochs']} epochs in {t['wall_s']:.1f} s to quality "
                f"{t['quality']:.4f} (target {t['target']}); time to target: "
                + (f"{t['time_to_target_s']:.1f} s" if t.get("time_to_target_s") else "not reached")
                + f". Data: {t.get('data_source', '')}."
            )
        usable = [p for p in model_pts if p.latency_ms and p.quality is not None]
        pareto = []
        for label, threads in sorted({(p.label, p.threads) for p in usable}):
            group = [p for p in usable if p.label == label and p.threads == threads]
            front = pareto_front(group)
            series = label if "projected" in label else f"{label}, {threads} thr"
            pareto += [
                ParetoPoint(
                    series, p.optimization, p.latency_ms or 0.0, p.quality or 0.0, p in front
                )
                for p in group
            ]
        metric_name = usable[0].quality_metric if usable else None
        doc.image(
            f"{model}_pareto",
            pareto_png(model, metric_name or "quality", pareto),
            f"{model} Pareto front",
        )
        doc.para("Recommendations:")
        doc.bullets([sentence for _, _, sentence in recommendations(model_pts)])
        note = int8_note(pts, records, model)
        if note:
            doc.para(note)
        doc.table(*tradeoff_rows(model_pts))
        doc.para(TRADEOFF_LEGEND, css="legend")


def write_report(run_dir: Path, records: Iterable[Record | dict[str, Any]]) -> list[Path]:
    """Write report.md and report.html (plots embedded in the HTML, PNGs beside the Markdown)."""
    records = as_records(records)
    if not records:
        return []
    doc = _Doc(run_dir / "report_files")
    _summary(doc, records)
    doc.para(LEGEND, css="legend")
    _tradeoff_sections(doc, records, points(records))
    _cdf_section(doc, records)
    profiles = run_profiles(run_dir, records)
    _roofline_section(doc, records, profiles)
    _hardware_section(doc, records, profiles)
    _pipeline_section(doc, records)
    _training_section(doc, records)
    _serving_section(doc, records)
    _environment_section(doc, records)

    title = f"accelbench report — run {run_dir.name}"
    contents_md = [f"- {text}" for _, text in doc.contents]
    md = [f"# {title}", "", "Contents:", "", *contents_md, "", *doc.md]
    contents_html = "".join(
        f'<li><a href="#{anchor}">{html.escape(text)}</a></li>' for anchor, text in doc.contents
    )
    body = [f"<h1>{html.escape(title)}</h1>", f"<nav><ul>{contents_html}</ul></nav>", *doc.body]
    _write(run_dir / "report.md", "\n".join(md).rstrip() + "\n")
    page = _HTML.format(title=html.escape(title), body="\n".join(body))
    _write(run_dir / "report.html", page)
    return [run_dir / "report.md", run_dir / "report.html"]


def _write(path: Path, text: str) -> None:
    """Write through a temporary file, so a reader never sees half a report."""
    write_atomic(path, text)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #1d1d1f; line-height: 1.45; }}
h1 {{ font-size: 1.6em; border-bottom: 2px solid #333; padding-bottom: .3em; }}
h2 {{ font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
h3 {{ font-size: 1.1em; margin-top: 1.5em; }}
h4 {{ font-size: 1em; margin: 1em 0 .3em; }}
nav ul {{ columns: 3; list-style: square; padding-left: 1.2em; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
img {{ max-width: 100%; display: block; margin: .6em 0; border: 1px solid #eee; }}
.legend {{ background: #fff8e1; border-left: 4px solid #f0b400; padding: .5em .8em; }}
.verdict {{ background: #eef5ff; border-left: 4px solid #3572c6; padding: .5em .8em; }}
</style></head>
<body>
{body}
</body></html>
"""
