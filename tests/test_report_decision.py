"""The report leads with the answer: the recommended artifact per profile, its paired speed-up
and interval, size, accuracy and how it was obtained, before the evidence; and no Pareto plot
puts measured and projected latencies on one axis."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from test_paired_suite import _paired, _run, _single_stream
from test_report_sections import synthetic_records, write_run

import accelbench.report.plots as plots
from accelbench.records import metric


def _other_model(record: dict) -> dict:
    """The same record for a second model, m2, whose int8 was not timed paired."""
    other = copy.deepcopy(record)
    other["model"] = "m2"
    other["cell_id"] = "m2." + record["cell_id"].split(".", 1)[1]
    return other


@pytest.fixture(scope="module")
def decision_run(tmp_path_factory) -> Path:
    # m: int8 paired at 1/0.5435 = 1.84x (CI 1.80-1.88), 2.5x smaller, -0.5 points.
    records = [
        _single_stream("fp32", 1.0, 0.95, size=10_000),
        _single_stream("int8", 0.5, 0.945, size=4_000),
        _paired("int8", 0.5435, 0.5319, 0.5556),
    ]
    records += [_other_model(r) for r in records[:2]]
    return _run(tmp_path_factory.mktemp("decision") / "run", records)


def _decision_table(md: str) -> list[str]:
    section = md.split("## Recommended artifact per profile")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_decision_table_comes_first(decision_run: Path) -> None:
    md = (decision_run / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Recommended artifact per profile"
    # Before the contents, every plot and the per-model evidence.
    first = md.index("## Recommended artifact per profile")
    assert first < md.index("Contents:") < md.index("## m\n") < md.index("](report_files/")
    page = (decision_run / "report.html").read_text()
    table = page.index('<table class="decision">')
    assert page.index("</h1>") < table < page.index("<nav>") < page.index("<img")


def test_the_decision_table_names_the_pick_with_its_interval_and_label(decision_run: Path) -> None:
    rows = _decision_table((decision_run / "report.md").read_text())
    assert rows[0] == (
        "| model | profile | recommended | speed-up vs fp32 | size | accuracy vs fp32 | obtained |"
    )
    assert (
        "| m | host (1 thr) | int8 | 1.84× (95% CI 1.80–1.88, 5 rounds 1.78–1.90, paired) "
        "| 3.9 KiB, 2.5× smaller on disk | -0.50 points | measured |"
    ) in rows
    # Nothing recommendable: the cell says why (no paired timing), with the unpaired figure.
    (m2,) = [row for row in rows if row.startswith("| m2 |")]
    assert "| none: no optimization was timed paired with fp32" in m2
    assert "separately measured cells, not evidence of a difference" in m2
    assert m2.endswith("| - | - | - | measured |")
    page = (decision_run / "report.html").read_text()
    assert "<td>1.84× (95% CI 1.80–1.88, 5 rounds 1.78–1.90, paired)</td>" in page


def test_a_profile_with_one_artifact_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", [_single_stream("fp32", 1.0, 0.95)])
    (row,) = _decision_table((run / "report.md").read_text())[2:]
    assert row.startswith("| host (1 thr) | none: only fp32 ran there (")
    assert "ms, measured p50), so there is nothing to compare it with | - |" in row


def test_one_model_has_no_model_column_and_projections_are_labelled(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", synthetic_records())
    rows = _decision_table((run / "report.md").read_text())
    assert rows[0].startswith("| profile | recommended |")
    assert "| nvidia-t4 (projected) | int8 | 2.00× (projected) |" in "\n".join(rows)
    assert rows[-1].endswith("| projected |")
    (rpi4,) = [row for row in rows if row.startswith("| rpi4 (emulated, 4 thr) |")]
    assert rpi4.endswith("| emulated |")


def test_no_pareto_plot_mixes_measured_and_projected_points(tmp_path: Path, monkeypatch) -> None:
    drawn: list[list[str]] = []
    draw = plots.pareto_png

    def spy(model: str, quality_metric: str, points: list) -> bytes | None:
        drawn.append([p.kind for p in points])
        return draw(model, quality_metric, points)

    monkeypatch.setattr(plots, "pareto_png", spy)
    records = synthetic_records()
    for r in records:  # give the projections a quality, so that they are plotted too
        if r["execution"] == "projected":
            r["metrics"]["accuracy"] = metric(0.9, "fraction", "higher")
    run = write_run(tmp_path / "run", records)
    assert [set(kinds) for kinds in drawn] == [{"measured"}, {"emulated"}, {"projected"}]
    md = (run / "report.md").read_text()
    images = re.findall(r"!\[tiny_cnn Pareto front, (\w+)\]\(report_files/(\S+)\)", md)
    assert images == [
        ("measured", "tiny_cnn_pareto.png"),
        ("emulated", "tiny_cnn_pareto_emulated.png"),
        ("projected", "tiny_cnn_pareto_projected.png"),
    ]
    mixed = [plots.ParetoPoint("host", "fp32", 0.02, 0.9, True, "measured")]
    mixed.append(plots.ParetoPoint("coral", "int8", 1.1, 0.9, True, "projected"))
    with pytest.raises(ValueError, match="not measured and projected"):
        draw("m", "accuracy", mixed)


def test_a_projected_device_without_fp32_gives_its_figure_and_band(tmp_path: Path) -> None:
    # An int8-only accelerator refuses fp32: the row gives the projected figure and its band.
    int8 = {
        "model": "m",
        "optimization": "int8",
        "profile": "coral-edgetpu",
        "execution": "projected",
        "threads": 1,
        "scenario": "single-stream",
        "status": "ok",
        "metrics": {
            "projected_latency_ms": metric(2.0, "ms", "lower"),
            "model_bytes": metric(4000, "bytes", "lower"),
        },
        "projection": {
            "projected_latency_ms": 2.0,
            "band": {"low_ms": 1.2, "high_ms": 3.4, "rests_on": "checked on 5 published rows"},
        },
    }
    run = _run(tmp_path / "run", [int8])
    (row,) = _decision_table((run / "report.md").read_text())[2:]
    assert row.startswith("| coral-edgetpu (projected) | int8 | - (no fp32 there); 2 ms projected")
    assert "band 1.2–3.4 ms" in row and row.endswith("| projected |")
