"""The training benchmark: step time, throughput, time to target and scaling per configuration."""

from __future__ import annotations

from accelbench.records import Record
from accelbench.report.document import Document
from accelbench.report.sections.context import Context, num

title = "Training"

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


def render(doc: Document, ctx: Context) -> None:
    bench = [r for r in ctx.records if _is_training_benchmark(r)]
    if not bench:
        return
    doc.heading(2, title)
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
                    *(num(r.metric(m)) for m, _ in present),
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
