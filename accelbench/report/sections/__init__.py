"""The report's sections, one module each, in the order the report shows them.

Every section module has the same small interface (``Section``): a ``title`` and
``render(doc, ctx)``, which writes its blocks to the document, or nothing when the run has no
records for it. ``sections()`` is the one list the report iterates: the sections of every run
(``FIRST``, ``EVIDENCE``, ``LAST``) with, between the evidence and the environment, each
scenario's own section as the scenario table names it (``Scenario.report_section``, e.g.
"accelbench.report.sections:training"), so a new scenario brings its section with it.
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


# The answer first (summary, decision table), then the contents, then the evidence of every
# run; the scenarios' sections follow (each renders only when the run has records of it), and
# the environment closes the report.
FIRST: tuple[Section, ...] = (summary, decision, contents)
EVIDENCE: tuple[Section, ...] = (tradeoffs, roofline, hardware)
LAST: tuple[Section, ...] = (environment,)


def scenario_sections() -> list[Section]:
    """Each scenario's report section, in the scenario table's order, each once (the four
    LoadGen scenarios share one)."""
    from accelbench.benchmarks.scenarios import SCENARIOS

    found: list[Section] = []
    for scenario in SCENARIOS.values():
        section = scenario.section()
        if section is not None and section not in found:
            found.append(section)
    return found


def sections() -> list[Section]:
    """Every section of the report, in the order it shows them."""
    return [*FIRST, *EVIDENCE, *scenario_sections(), *LAST]


# The scenarios' sections are attributes here ("accelbench.report.sections:training") for the
# scenario table to name.
__all__ = [
    "Context",
    "Section",
    "input_pipeline",
    "latency",
    "scenario_sections",
    "sections",
    "serving",
    "training",
]
