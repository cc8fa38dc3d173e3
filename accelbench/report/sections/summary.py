"""The line under the title: how many records, by status and by how they were obtained."""

from __future__ import annotations

from accelbench.report.document import Document
from accelbench.report.sections.context import Context, setting

title = "Summary"


def render(doc: Document, ctx: Context) -> None:
    records = ctx.records
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status or "?"] = counts.get(r.status or "?", 0) + 1
    by_execution: dict[str, int] = {}
    for r in records:
        by_execution[r.execution or "?"] = by_execution.get(r.execution or "?", 0) + 1
    presets = sorted({str(setting(r, "preset")) for r in records if setting(r, "preset")})
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
