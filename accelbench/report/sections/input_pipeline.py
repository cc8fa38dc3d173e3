"""The input-pipeline scenario: examples/s per storage format and pipeline, and whether training
is input-bound."""

from __future__ import annotations

from typing import Any

from accelbench.records import Record
from accelbench.report.document import Document
from accelbench.report.sections.context import Context, num, ratio, setting

title = "Input pipeline"


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
        f"the training step consumes {num(step)} examples/s; the naive {settings.get('format')} "
        f"pipeline delivers {num(record.metric('naive_pipeline_examples_per_s'))}"
        + (f" (step / naive = {factor:.3g})" if factor is not None else "")
        + f", the best ({settings.get('best_pipeline')}) "
        f"{num(record.metric('best_pipeline_examples_per_s'))}"
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
            f"{fmt}: naive {num(v.get('naive_pipeline_examples_per_s'))} examples/s → {state}"
            + (f", removed by {fix}" if v.get("input_bound") and fix else "")
            + (", no configuration keeps up" if v.get("input_bound") and not fix else "")
        )
    return lines


def render(doc: Document, ctx: Context) -> None:
    group_all = [r for r in ctx.records if r.scenario == "input-pipeline"]
    if not group_all:
        return
    doc.heading(2, title)
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
        configs = [r for r in group if setting(r, "format") and r not in verdicts]
        others = [r for r in group if r not in configs and r not in verdicts]
        formats = list(dict.fromkeys(setting(r, "format") for r in configs))
        summary = []
        for fmt in formats:
            rows = [r for r in configs if setting(r, "format") == fmt]
            best = _best_pipeline(rows)
            naive = next((r for r in rows if _ran(r) and setting(r, "pipeline") == "naive"), None)
            if best is None:
                reason = next((r.error for r in rows if r.error), "no result")
                summary.append([fmt, "-", "-", "-", "-", reason or "-"])
                continue
            summary.append(
                [
                    fmt,
                    str(setting(best, "pipeline")),
                    num(best.metric("examples_per_s")),
                    num(naive.metric("examples_per_s")) if naive else "-",
                    ratio(best.metric("speedup_vs_naive")),
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
            rows = [r for r in configs if setting(r, "format") == fmt]
            best = _best_pipeline(rows)
            table = []
            for r in rows:
                table.append(
                    [
                        str(setting(r, "pipeline") or "-"),
                        r.status or "",
                        num(r.metric("examples_per_s")),
                        num(r.metric("mb_per_s")),
                        ratio(r.metric("speedup_vs_naive")),
                        "best" if r is best else "",
                        _stages(setting(r, "stage_ms_per_example")),
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
