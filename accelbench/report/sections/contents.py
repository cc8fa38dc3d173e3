"""The contents list: every level-2 heading of the report, linked, placed where this section is."""

from __future__ import annotations

from accelbench.report.document import Document
from accelbench.report.sections.context import Context

title = "Contents"


def render(doc: Document, ctx: Context) -> None:
    doc.contents_here()
