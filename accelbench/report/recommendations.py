"""The run's recommendations: one choice per model, profile and thread count, in words and as
the rows of the table `accelbench run` ends with (the report's decision table reads the same)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accelbench.records import Record
from accelbench.report.tradeoffs import Choice, Point, choose, points


def choices(pts: list[Point]) -> list[tuple[str, Choice]]:
    """(where, choice) for every model, profile and thread count in the points, in their order;
    where names the profile with its execution and thread count, e.g. 'rpi4 (emulated, 4 thr)'."""
    out = []
    for model in dict.fromkeys(p.model for p in pts):
        model_pts = [p for p in pts if p.model == model]
        for label in dict.fromkeys(p.label for p in model_pts):
            for threads in sorted({p.threads for p in model_pts if p.label == label}):
                group = [p for p in model_pts if p.label == label and p.threads == threads]
                if "projected" in label:
                    where = label
                elif label.endswith(")"):
                    where = f"{label[:-1]}, {threads} thr)"
                else:
                    where = f"{label} ({threads} thr)"
                out.append((where, choose(group, model, label)))
    return out


def recommendations(pts: list[Point]) -> list[tuple[str, str, str]]:
    """(model, where, sentence) for every model, profile and thread count in the points."""
    out = []
    for where, choice in choices(pts):
        sentence = choice.sentence().replace(choice.label, where, 1)
        out.append((choice.model, where, sentence[0].upper() + sentence[1:]))
    return out


def print_recommendations(records: Iterable[Record | dict[str, Any]]) -> None:
    """The recommendation table `accelbench run` ends with."""
    from rich.console import Console
    from rich.table import Table

    rows = recommendations(points(records))
    if not rows:
        return
    table = Table(
        title="Recommendations (latency: single-stream; speed-ups: paired where timed; "
        "full table: accelbench results show)"
    )
    for column in ("model", "where", "recommendation"):
        table.add_column(column, overflow="fold")
    for model, where, sentence in rows:
        table.add_row(model, where, sentence)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
