"""The answer first: per profile (and model), the recommended artifact, its speed-up over fp32
with its interval, its size and accuracy against fp32, and how the figures were obtained."""

from __future__ import annotations

from accelbench.report.document import Document
from accelbench.report.recommendations import choices
from accelbench.report.sections.context import Context
from accelbench.report.tables import LEGEND
from accelbench.report.tradeoffs import MAX_LOSS, Choice

title = "Recommended artifact per profile"


def decision_row(where: str, choice: Choice) -> list[str]:
    """profile, recommended, speed-up vs fp32, size, accuracy vs fp32, obtained."""
    pick = choice.pick
    if pick is None:
        obtained = choice.base.kind if choice.base else "-"
        return [where, f"none: {choice.reason()}", "-", "-", "-", obtained]
    if choice.base is None:
        speedup = "- (no fp32 latency there to compare with)"
        if pick.device_latency_ms is not None:
            # Where fp32 cannot run (an int8-only accelerator), the figure itself is the answer.
            speedup = (
                f"- (no fp32 there); {pick.device_latency_ms:.3g} ms {pick.device_latency_kind}"
            )
            if pick.device_band is not None:
                speedup += f", band {pick.device_band[0]:.3g}–{pick.device_band[1]:.3g} ms"
            elif pick.device_latency_kind == "projected":
                speedup += ", unchecked"
    else:
        speedup = pick.speedup.text() if pick.speedup else "-"
    size = f"{pick.model_bytes / 1024:.1f} KiB" if pick.model_bytes else "-"
    if pick.smaller_by:
        size += f", {pick.smaller_text()}"
    if pick.quality_delta is None:
        accuracy = "not measured"
    else:
        accuracy = f"{pick.quality_delta * 100:+.2f} points"
    if pick.flagged_classes:
        accuracy += f"; classes {', '.join(pick.flagged_classes)} lose more than 2 points"
    return [where, pick.optimization, speedup, size, accuracy, pick.kind]


def render(doc: Document, ctx: Context) -> None:
    picked = choices(ctx.points)
    if not picked:
        return
    several = len({choice.model for _, choice in picked}) > 1
    doc.heading(2, title)
    doc.para(
        "Per profile and thread count, the artifact the run shows faster than fp32 (of those, "
        f"the largest speed-up that loses at most {MAX_LOSS * 100:g} point of accuracy and no "
        "class), with its speed-up and interval (paired: both timed in one worker), its size "
        "and accuracy against fp32, and how its figures were obtained: measured, emulated (this "
        "host under the device's limits) or projected (the device model's estimate). The evidence "
        "follows."
    )
    header = ["profile", "recommended", "speed-up vs fp32", "size", "accuracy vs fp32", "obtained"]
    rows = []
    for where, choice in picked:
        row = decision_row(where, choice)
        rows.append([choice.model, *row] if several else row)
    doc.table(["model", *header] if several else header, rows, css="decision")
    doc.para(LEGEND, css="legend")
