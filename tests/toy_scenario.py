"""A scenario from outside accelbench, for test_scenario_registry: each cell reads its model
artifact's bytes ``reads`` times and records the read rate.

It is what adding a scenario takes: this module, and ``TOY`` in the scenario table
(register_scenario here, or ``ACCELBENCH_SCENARIOS=toy_scenario:TOY`` for the CLI and its
workers). Its options are a suite's ``artifact_read:`` mapping, checked by ``Options``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accelbench.benchmarks.scenarios import Scenario
from accelbench.records import metric


class Options(BaseModel):
    """A suite's ``artifact_read:`` mapping."""

    model_config = ConfigDict(extra="forbid")
    reads: int = Field(default=3, ge=1, description="times the artifact is read")


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Read the cell's artifact ``reads`` times; the bytes read per second."""
    options = Options.model_validate(cell["settings"]["artifact_read"])
    path = Path(cell["model_path"])
    size = path.stat().st_size
    start = time.perf_counter()
    for _ in range(options.reads):
        path.read_bytes()
    seconds = time.perf_counter() - start
    return {
        "status": "ok",
        "error": None,
        "metrics": {
            "read_mb_per_s": metric(size * options.reads / 1e6 / seconds, "MB/s", "higher"),
            "reads": metric(options.reads, "count", "none"),
        },
        "settings": {"reads": options.reads},
    }


class Section:
    """Its section of the report: one line per cell of the scenario."""

    title = "Artifact read rate"

    @staticmethod
    def render(doc: Any, ctx: Any) -> None:
        rows = [r for r in ctx.records if r.scenario == "artifact-read" and r.status == "ok"]
        if not rows:
            return
        doc.heading(2, Section.title)
        doc.bullets([f"{r.model}: {r.metrics['read_mb_per_s'].value:.1f} MB/s read" for r in rows])


TOY = Scenario(
    "artifact-read",
    "module",
    "toy_scenario:run_cell",
    help="the artifact's read rate",
    options="toy_scenario:Options",
    report_section="toy_scenario:Section",
)
