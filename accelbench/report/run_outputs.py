"""A run folder's files derived from its records.jsonl: results.parquet, summary.md and the
report (report.md, report.html)."""

from __future__ import annotations

from pathlib import Path

from accelbench.records import read_typed_records, replace_durably, temporary_path, write_atomic
from accelbench.report.tables import records_frame, summary_markdown


def write_run_outputs(run_dir: Path) -> None:
    """Derive results.parquet and summary.md from records.jsonl (written via temp files)."""
    records = read_typed_records(run_dir)
    if not records:
        return
    frame = records_frame(records)
    target = run_dir / "results.parquet"
    tmp = temporary_path(target)
    try:
        frame.to_parquet(tmp, index=False)
        replace_durably(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    write_atomic(run_dir / "summary.md", summary_markdown(records, run_dir))
    from accelbench.report.report import write_report

    write_report(run_dir, records)
