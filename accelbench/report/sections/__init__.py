"""The report's sections, one module each, in the order the report shows them.

Every section module has the same small interface (``Section``): a ``title`` and
``render(doc, ctx)``, which writes its blocks to the document, or nothing when the run has no
records for it. ``SECTIONS`` is the one list the report iterates; a new section is a module with
that interface, added to the list where it belongs.
"""

from __future__ import annotations

from typing import Protocol

from accelbench.report.document import Document
from accelbench.report.sections import (
    contents,
    decision,
    environment,
    hardware,
    input_pipeline,
    latency,
    roofline,
    serving,
    summary,
    tradeoffs,
    training,
)
from accelbench.report.sections.context import Context


class Section(Protocol):
    """One part of the report: its title, and how it renders a run into the document."""

    title: str

    def render(self, doc: Document, ctx: Context) -> None: ...


# The answer first (summary, decision table), then the contents, then the evidence; the
# scenario sections (input pipeline, training, serving) render only when the run has records of
# their scenario.
SECTIONS: list[Section] = [
    summary,
    decision,
    contents,
    tradeoffs,
    latency,
    roofline,
    hardware,
    input_pipeline,
    training,
    serving,
    environment,
]

__all__ = ["SECTIONS", "Context", "Section"]
