"""The serving scenario's section, rendered by the serving report module in both forms."""

from __future__ import annotations

from accelbench.report.document import Document
from accelbench.report.sections.context import Context

title = "Serving"


def render(doc: Document, ctx: Context) -> None:
    from accelbench.report import serving as serving_report

    # The serving module picks its own records (those with a latency-throughput curve: the
    # serving scenario's modes, and accelbench load's peak searches); it reads them as dicts.
    served = [r.to_dict() for r in ctx.records]
    markdown = serving_report.serving_markdown(served)
    fragment = serving_report.serving_html(served)
    if markdown or fragment:
        doc.section_fragment(title, markdown, fragment)
