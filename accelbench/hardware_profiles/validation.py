"""The published figures a projection is checked against, and how far off a projection is.

``validation.yaml`` (package data) lists each published row: the architecture, input size and
precision it was measured on, the device profile, the scenario, the figure and its source. The
rows' graphs are built by ``accelbench.optimizers.validation_models`` (a layer up: it needs the
model zoo and TensorFlow).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

VALIDATION_FILE = Path(__file__).parent / "validation.yaml"


@dataclass(frozen=True)
class ValidationRow:
    """One published figure: the model, the device profile, the scenario and where it is from."""

    architecture: str
    input_size: int
    precision: str
    profile: str
    scenario: str
    statistic: str
    published: float
    source: str
    url: str
    date: str
    runtime: str | None = None

    @property
    def key(self) -> str:
        """The cached graph's name: architecture, input size and precision."""
        return f"{self.architecture}-{self.input_size}-{self.precision}"

    @property
    def row_id(self) -> str:
        """Names the row among the table's: profile, graph and scenario."""
        return f"{self.profile}:{self.key}:{self.scenario}"

    @property
    def unit(self) -> str:
        return "samples/s" if self.scenario == "offline" else "ms"

    def label(self) -> str:
        runtime = f" ({self.runtime})" if self.runtime else ""
        return f"{self.architecture} {self.input_size} {self.precision}{runtime}"


def load_rows(path: Path = VALIDATION_FILE) -> list[ValidationRow]:
    """Every row of the validation table."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [ValidationRow(**{**row, "date": str(row["date"])}) for row in data]


def ratio_error(ratio: float) -> float:
    """How far off a projected/published ratio is, as a factor of 1 or more (0.5 and 2 are 2×)."""
    return max(ratio, 1 / ratio)


def summarise(errors: list[float]) -> dict[str, float]:
    """Worst and median error factor of a device's rows."""
    return {"worst": max(errors), "median": statistics.median(errors)}
