"""What every section reads: the run's records, its trade-off points and its profiles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from accelbench.records import Record
from accelbench.report.tradeoffs import Point, points


@dataclass
class RunProfile:
    """A profile's figures as the run used them, or why they are unknown."""

    name: str
    data: dict[str, Any] | None
    origin: str  # where the figures were read from, or why there are none


def run_profiles(run_dir: Path, records: list[Record]) -> dict[str, RunProfile]:
    """Each profile of the run: from the record, else the cell file the worker got (the exact
    figures of that run, a calibrated host's included), else the built-in profile of that name.
    """
    from accelbench.hardware_profiles import builtin_names, load_profile

    found: dict[str, RunProfile] = {}
    for r in records:
        name = r.profile
        if not name or name in found:
            continue
        if r.profile_data is not None:
            found[name] = RunProfile(name, r.profile_data, "the record")
            continue
        cell_file = run_dir / "cells" / f"{r.parent_cell_id or r.cell_id}.cell.json"
        if cell_file.is_file():
            try:
                data = json.loads(cell_file.read_text(encoding="utf-8")).get("profile_data")
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict):
                found[name] = RunProfile(name, data, f"the run's cell file {cell_file.name}")
                continue
    for r in records:
        name = r.profile
        if not name or name in found:
            continue
        if name in builtin_names():
            data = load_profile(name).model_dump(mode="json")
            found[name] = RunProfile(name, data, "the built-in profile of that name")
        else:
            found[name] = RunProfile(
                name, None, "no cell file in the run folder and no built-in profile of that name"
            )
    return found


@dataclass
class Context:
    """One run as the sections see it; points and profiles are worked out once, when first read."""

    run_dir: Path
    records: list[Record]

    @cached_property
    def points(self) -> list[Point]:
        """One trade-off point per artifact and profile (see tradeoffs.points)."""
        return points(self.records)

    @cached_property
    def profiles(self) -> dict[str, RunProfile]:
        """Each profile's figures as the run used them."""
        return run_profiles(self.run_dir, self.records)

    @property
    def models(self) -> list[str]:
        """The run's models, in the order their first record came."""
        return models(self.records)


def models(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(str(r.model) for r in records))


def num(x: float | None, unit: str = "") -> str:
    """A figure for a table: thousands separated from 1,000 up, else 4 significant digits."""
    if x is None:
        return "-"
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return f"{text} {unit}".rstrip()


def setting(record: Record, name: str) -> Any:
    """One of a record's settings, None where it has none."""
    return (record.settings or {}).get(name)


def ratio(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "-"
