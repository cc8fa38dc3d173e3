"""The run report: report.md and a self-contained report.html, per model a Pareto plot, a
trade-off table across optimizations and profiles, and one recommendation per profile."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from accelbench.report.tables import LEGEND, markdown_table
from accelbench.report.tradeoffs import Point, pareto_front, points, recommendation

INT8_TARGET_SPEEDUP = 2.0


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
                _fmt_ratio(p.speedup_vs_fp32),
                f"{p.model_bytes / 1024:.1f} KiB" if p.model_bytes else "-",
                f"{p.model_gzip_bytes / 1024:.1f} KiB" if p.model_gzip_bytes else "-",
                _fmt_ratio(p.size_ratio_vs_fp32),
                f"{p.quality:.4f}" if p.quality is not None else "-",
                _fmt_points(p.quality_delta),
                _fmt_points(p.worst_class_delta),
                ", ".join(p.flagged_classes) or "-",
                _spread(p),
            ]
        )
    return header, rows


def _spread(p: Point) -> str:
    if p.spread is None:
        return "-"
    return f"{p.spread:.0%}" + (" unstable: busy machine, rerun" if p.unstable else "")


def pareto_png(pts: list[Point], model: str) -> bytes | None:
    """Accuracy against latency, one series per profile, each profile's Pareto front joined."""
    usable = [p for p in pts if p.latency_ms and p.quality is not None]
    if not usable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    labels = sorted({(p.label, p.threads) for p in usable})
    for label, threads in labels:
        group = [p for p in usable if p.label == label and p.threads == threads]
        name = f"{label}, {threads} thr" if "projected" not in label else label
        dots = ax.scatter([p.latency_ms for p in group], [p.quality for p in group], label=name)
        front = pareto_front(group)
        ax.plot(
            [p.latency_ms for p in front],
            [p.quality for p in front],
            "--",
            color=dots.get_facecolor()[0],
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
    ax.set_xlabel("single-stream latency, ms (p50 measured or emulated; projected where marked)")
    ax.set_ylabel(usable[0].quality_metric or "quality")
    ax.set_title(f"{model}: quality vs latency (dashed: Pareto front per profile)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def int8_note(pts: list[Point], records: list[dict[str, Any]], model: str) -> str | None:
    """Whether int8 met the 2x speed-up on the host at 1 thread, and why not when it did not."""
    host1 = {
        p.optimization: p
        for p in pts
        if p.model == model and p.profile == "host" and p.threads == 1
    }
    fp32, int8 = host1.get("fp32"), host1.get("int8")
    if not (fp32 and int8 and fp32.latency_ms and int8.latency_ms):
        return None
    speedup = fp32.latency_ms / int8.latency_ms
    text = (
        f"int8 vs fp32 on host, 1 thread: {speedup:.2f}× ({fp32.latency_ms:.4g} → "
        f"{int8.latency_ms:.4g} ms p50), {_fmt_points(int8.quality_delta)} points."
    )
    if speedup >= INT8_TARGET_SPEEDUP:
        return text + " Meets the 2× target."
    rec = next(
        (
            r
            for r in records
            if r["model"] == model
            and r["optimization"] == "int8"
            and r.get("scenario") == "accuracy"
        ),
        None,
    )
    float_ops = ((rec or {}).get("quality") or {}).get("float_ops") or []
    reasons = []
    for p in (fp32, int8):
        if p.unstable:
            reasons.append(
                f"the {p.optimization} measurement is unstable (interquartile range "
                f"{p.spread:.0%} of its median: the machine was busy), so rerun before trusting it"
            )
    if float_ops:
        reasons.append(
            f"{len(float_ops)} ops stayed in float ({', '.join(sorted(set(float_ops)))})"
        )
    if fp32.latency_ms < 0.2:
        reasons.append(
            f"the fp32 model already runs in {fp32.latency_ms * 1000:.0f} µs, so the fixed cost "
            "of each call (input copy, interpreter dispatch, LoadGen's own handling) is a large "
            "share of the latency and int8 kernels cannot shrink it"
        )
    if not reasons:
        # No cause in the graph: compare with the model's other integer artifacts in this run.
        others = [
            p for name, p in host1.items()
            if name not in ("int8", "fp32") and name.endswith("int8") and p.latency_ms
        ]  # fmt: skip
        best = min(others, key=lambda p: p.latency_ms, default=None)
        reason = "every op runs in integer, so the graph does not explain it"
        if best and best.latency_ms < int8.latency_ms / 1.2:
            reason += (
                f", and {best.optimization}, with the same integer kernels, ran in "
                f"{best.latency_ms:.4g} ms in this run: the int8 cell most likely met a busy "
                "machine; rerun it"
            )
        else:
            reason += "; this CPU's fp32 kernels may simply be competitive here: rerun to confirm"
        reasons.append(reason)
    return text + " Below the 2× target: " + "; ".join(reasons) + "."


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


def print_recommendations(records: list[dict[str, Any]]) -> None:
    """The recommendation table `accelbench run` ends with."""
    from rich.console import Console
    from rich.table import Table

    rows = recommendations(points(records))
    if not rows:
        return
    table = Table(title="Recommendations (single-stream; full table: accelbench results show)")
    for column in ("model", "where", "recommendation"):
        table.add_column(column, overflow="fold")
    for model, where, sentence in rows:
        table.add_row(model, where, sentence)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def _models(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in records))


def write_report(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write report.md and report.html (plots embedded in the HTML, PNGs beside the Markdown)."""
    pts = points(records)
    if not pts:
        return []
    files_dir = run_dir / "report_files"
    md = [f"# accelbench report — run {run_dir.name}", "", LEGEND, ""]
    body = [
        f"<h1>accelbench report — run {html.escape(run_dir.name)}</h1>",
        f"<p>{html.escape(LEGEND)}</p>",
    ]
    for model in _models(records):
        model_pts = [p for p in pts if p.model == model]
        if not model_pts:
            continue
        md += [f"## {model}", ""]
        body.append(f"<h2>{html.escape(model)}</h2>")
        training = next(
            (
                r
                for r in records
                if r["model"] == model and r.get("scenario") == "training" and r["status"] == "ok"
            ),
            None,
        )
        if training and training.get("training"):
            t = training["training"]
            line = (
                f"Trained {t['epochs']} epochs in {t['wall_s']:.1f} s to quality "
                f"{t['quality']:.4f} (target {t['target']}); time to target: "
                + (f"{t['time_to_target_s']:.1f} s" if t.get("time_to_target_s") else "not reached")
                + f". Data: {t.get('data_source', '')}."
            )
            md += [line, ""]
            body.append(f"<p>{html.escape(line)}</p>")
        png = pareto_png(model_pts, model)
        if png:
            files_dir.mkdir(exist_ok=True)
            (files_dir / f"{model}_pareto.png").write_bytes(png)
            md += [f"![{model} Pareto front](report_files/{model}_pareto.png)", ""]
            b64 = base64.b64encode(png).decode()
            body.append(
                f'<img alt="{html.escape(model)} Pareto front" src="data:image/png;base64,{b64}">'
            )
        md += ["Recommendations:", ""]
        body.append("<ul>")
        for _, _, sentence in recommendations(model_pts):
            md.append(f"- {sentence}")
            body.append(f"<li>{html.escape(sentence)}</li>")
        body.append("</ul>")
        note = int8_note(pts, records, model)
        if note:
            md += ["", note]
            body.append(f"<p>{html.escape(note)}</p>")
        header, rows = tradeoff_rows(model_pts)
        md += ["", markdown_table(header, rows), ""]
        body.append(_html_table(header, rows))
    (run_dir / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    page = _HTML.format(
        title=html.escape(f"accelbench report {run_dir.name}"), body="\n".join(body)
    )
    (run_dir / "report.html").write_text(page, encoding="utf-8")
    return [run_dir / "report.md", run_dir / "report.html"]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th {{ background: #f3f3f3; }}
td:first-child, td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
