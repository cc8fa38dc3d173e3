"""The run report: report.md and a self-contained report.html with the same content.

The sections (accelbench.report.sections) render in sections()' order into one document: the
answer first (the summary line and the recommended artifact per profile), then the evidence.
Every figure says whether it was measured here, emulated here, or projected.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from accelbench.records import Record, as_records, write_atomic
from accelbench.report.document import Document
from accelbench.report.sections import Context, sections


def write_report(run_dir: Path, records: Iterable[Record | dict[str, Any]]) -> list[Path]:
    """Write report.md and report.html (plots embedded in the HTML, PNGs beside the Markdown)."""
    records = as_records(records)
    if not records:
        return []
    doc = Document(run_dir / "report_files")
    ctx = Context(run_dir, records)
    for section in sections():
        section.render(doc, ctx)
    title = f"accelbench report — run {run_dir.name}"
    # Through a temporary file each, so a reader never sees half a report.
    write_atomic(run_dir / "report.md", doc.to_markdown(title))
    write_atomic(run_dir / "report.html", doc.to_html(title))
    return [run_dir / "report.md", run_dir / "report.html"]
