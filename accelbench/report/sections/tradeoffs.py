"""Per model, the evidence behind the recommendations: its training, one Pareto plot per way the
latencies were obtained, the recommendations in words, what int8 buys on the host and what bounds
it, and the table across optimizations and profiles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accelbench.benchmarks.paired import DEFAULT_THRESHOLD
from accelbench.records import Environment, Record, as_records
from accelbench.report.document import Document
from accelbench.report.recommendations import recommendations
from accelbench.report.sections.context import Context
from accelbench.report.tradeoffs import Point, paired_records, pareto_front

title = "Trade-offs per model"


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


def render(doc: Document, ctx: Context) -> None:
    from accelbench.report.plots import ParetoPoint, pareto_pngs

    records, pts = ctx.records, ctx.points
    for model in ctx.models:
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
                    series,
                    p.optimization,
                    p.latency_ms or 0.0,
                    p.quality or 0.0,
                    p in front,
                    p.kind,
                )
                for p in group
            ]
        metric_name = usable[0].quality_metric if usable else None
        for kind, png in pareto_pngs(model, metric_name or "quality", pareto).items():
            # The measured plot keeps the plain name; each other kind's is named after it.
            stem = f"{model}_pareto" if kind == "measured" else f"{model}_pareto_{kind}"
            doc.image(stem, png, f"{model} Pareto front, {kind}")
        doc.para("Recommendations:")
        doc.bullets([sentence for _, _, sentence in recommendations(model_pts)])
        note = int8_note(pts, records, model)
        if note:
            doc.para(note)
        doc.table(*tradeoff_rows(model_pts))
        doc.para(TRADEOFF_LEGEND, css="legend")
