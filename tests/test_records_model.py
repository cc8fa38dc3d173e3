"""The Record model: every record accelbench writes reads into it and back unchanged, records are
written through it (a misfit is refused), and its derived figures are the report's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from accelbench.errors import UsageError
from accelbench.records import (
    RECORDS_FILE,
    RUN_FIELDS,
    Record,
    append_record,
    metric,
    read_records,
    read_typed_records,
)
from accelbench.report.compare import compare_runs
from accelbench.runtimes.tflite_cost import analyze_tflite


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Real runs of every kind a test can make in seconds: measured, emulated, projected and
    refused (skipped) cells in two scenarios, and a paired ab comparison."""
    root = tmp_path_factory.mktemp("records")
    bench = root / "bench"
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--profile",
        "host,rpi4,nvidia-t4,coral-edgetpu",
        "--threads",
        "1",
        "--scenario",
        "single-stream,offline",
        "--out",
        str(bench),
        "--no-progress",
    )
    assert proc.returncode in (0, 1), proc.stderr  # coral refuses an fp32 model: exit 1
    ab = root / "ab"
    proc = run_cli(
        "ab",
        str(DATA / "conv2_f32.tflite"),
        str(DATA / "conv6_f32.tflite"),
        "--threads",
        "1",
        "--pairs",
        "50",
        "--rounds",
        "3",
        "--out",
        str(ab),
        "--format",
        "json",
    )
    assert proc.returncode in (0, 1), proc.stderr
    return {"bench": bench, "ab": ab}


def _lines(run_dir: Path) -> list[str]:
    return (run_dir / RECORDS_FILE).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("kind", ["bench", "ab"])
def test_every_record_reads_into_the_model_and_back_unchanged(runs, kind):
    lines = _lines(runs[kind])
    assert lines
    for line in lines:
        data = json.loads(line)
        record = Record.parse(data, run=True)  # a run's record carries every RUN_FIELD
        assert record.to_dict() == data
        # Byte for byte as append_record writes it.
        assert json.dumps(record.to_dict(), sort_keys=True) == line


def test_the_runs_cover_every_execution_and_status(runs):
    records = read_typed_records(runs["bench"]) + read_typed_records(runs["ab"])
    assert {r.execution for r in records} == {"local", "emulated", "projected"}
    assert {r.status for r in records} >= {"ok", "skipped"}
    assert {r.scenario for r in records} == {"single-stream", "offline", "paired"}


def test_derived_figures_are_the_stored_ones(runs):
    records = read_typed_records(runs["bench"])
    raw = {r["cell_id"]: r for r in read_records(runs["bench"])}
    cost = analyze_tflite(DATA / "mlp_f32.tflite")
    for r in records:
        stored = raw[r.cell_id]
        p50 = (stored["metrics"].get("latency_p50_ms") or {}).get("value")
        assert r.latency_p50_ms == p50 == r.metric("latency_p50_ms")
        assert r.metric("no_such_metric") is None
        assert r.cell_key == (stored["cell_id"], stored["execution"])
        if r.execution == "local":
            assert r.profile_label == "host" and r.where == "host, 1 thr — measured on this host"
        else:
            assert r.profile_label == f"{r.profile} ({r.execution})"
        if r.graph is not None:
            # The report's roofline point: GraphCost's own arithmetic, not a second copy.
            assert r.graph.memory_bytes == cost.memory_bytes
            assert r.graph.arithmetic_intensity == cost.arithmetic_intensity
    (paired,) = read_typed_records(runs["ab"])
    assert paired.paired is not None and paired.paired.ratio == paired.metric("paired_ratio")


def test_quality_and_configuration_properties():
    record = Record.parse(
        {
            "cell_id": "m.pipe.host.t1.input-pipeline.abcd.png.parallel",
            "parent_cell_id": "m.pipe.host.t1.input-pipeline.abcd",
            "metrics": {
                "auc": metric(0.91, "fraction", "higher"),
                "auc_delta": metric(-0.02, "fraction", "higher"),
                "model_gzip_bytes": metric(1234, "bytes", "lower"),
            },
            "quality": {"flagged_classes": ["cat"], "worst_class_delta": -0.05},
        }
    )
    assert record.configuration_key == "png.parallel"
    assert (record.quality_metric, record.quality_value, record.quality_delta) == (
        "auc",
        0.91,
        -0.02,
    )
    assert record.model_gzip_bytes == 1234 and isinstance(record.model_gzip_bytes, int)
    assert record.flagged_classes == ["cat"] and record.worst_class_delta == -0.05
    assert record.execution_label == "unknown"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "done"}, "status"),
        (
            {"metrics": {"qps": {"value": "fast", "unit": "samples/s", "direction": "higher"}}},
            "metrics.qps.value",
        ),
        (
            {"metrics": {"qps": {"value": True, "unit": "samples/s", "direction": "higher"}}},
            "metrics.qps.value",
        ),
        (
            {"metrics": {"qps": {"value": 1.0, "unit": "samples/s", "direction": "up"}}},
            "metrics.qps.direction",
        ),
        ({"threads": "1"}, "threads"),
        ({"execution": "simulated"}, "execution"),
    ],
)
def test_a_record_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, change, field):
    good = {"cell_id": "c", "status": "ok", "metrics": {"qps": metric(1.0, "samples/s", "higher")}}
    append_record(tmp_path, good)
    before = (tmp_path / RECORDS_FILE).read_bytes()
    with pytest.raises(ValueError, match=f"does not fit the record schema: {field}") as info:
        append_record(tmp_path, {**good, **change})
    assert "\n" not in str(info.value)
    assert (tmp_path / RECORDS_FILE).read_bytes() == before


def test_a_run_record_must_carry_every_run_field(runs):
    data = json.loads(_lines(runs["bench"])[0])
    assert set(RUN_FIELDS) <= set(data)
    del data["run_id"]
    Record.parse(data)  # a hand-made or baseline record may lack it
    with pytest.raises(ValueError, match="must carry run_id"):
        Record.parse(data, run=True)


def test_compare_names_a_record_that_does_not_fit(tmp_path, runs):
    broken = tmp_path / "broken"
    broken.mkdir()
    lines = _lines(runs["bench"])
    data = json.loads(lines[0])
    data["metrics"]["latency_p50_ms"]["value"] = "slow"
    (broken / RECORDS_FILE).write_text("\n".join([json.dumps(data), *lines[1:]]) + "\n")
    with pytest.raises(
        UsageError,
        match=r"record 1 of .*: metrics\.latency_p50_ms\.value: Input should be a valid integer or",
    ) as info:
        compare_runs(runs["bench"], broken)
    assert "\n" not in str(info.value)
    # Gone before the session's round-trip check of every records.jsonl (conftest.py).
    (broken / RECORDS_FILE).unlink()
