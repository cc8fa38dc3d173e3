"""Paired cells in suites: one per model, profile and thread count, one record per optimization
against fp32; the report and recommend state speed-ups from them, and say so where there are none.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli

from accelbench.cli import main
from accelbench.errors import UsageError
from accelbench.records import append_record, metric
from accelbench.report.recommendations import print_recommendations
from accelbench.report.run_outputs import write_run_outputs
from accelbench.report.sections.tradeoffs import int8_note
from accelbench.report.tradeoffs import points, recommendation
from accelbench.runner.suite import expand, suite_from_mapping
from accelbench.runner.suites import builtin_suite, default_optimizations

# ---------------------------------------------------------------------------------------------
# Expansion


def _paired_cells(suite: dict) -> list:
    return [c for c in expand(suite_from_mapping(suite, "test")) if c.scenario == "paired"]


def test_default_suite_gets_one_paired_cell_per_model_profile_and_threads() -> None:
    cells = _paired_cells(builtin_suite("default", 2))
    where = sorted((c.model, c.profile, c.execution, c.threads) for c in cells)
    rpi4 = min(4, len(os.sched_getaffinity(0)))  # the Pi's 4 cores, capped to this host's
    expected = sorted(
        (model, *place)
        for model in ("digits_cnn", "breast_cancer_mlp", "ic_resnet8")
        for place in (("host", "local", 1), ("host", "local", 2), ("rpi4", "emulated", rpi4))
    )
    assert where == expected  # no cell on the projected Coral Edge TPU
    for cell in cells:
        options = cell.settings["paired_options"]
        assert options["base"] == "fp32" and cell.prepared_by == cell.model
        assert options["optimizations"] == [o for o in default_optimizations() if o != "fp32"]
        assert (options["pairs"], options["rounds"]) == (100, 5)
        assert cell.cell_id.startswith(f"{cell.model}.fp32.{cell.profile}.t{cell.threads}.paired.")
    assert len({c.cell_id for c in cells}) == len(cells)


def _small(**fields) -> dict:
    suite = {
        "models": [{"name": "breast_cancer_mlp"}],
        "optimizations": ["fp32", "int8"],
        "profiles": ["host"],
        "threads": [1],
        "scenarios": ["single-stream"],
    }
    return {**suite, **fields}


def test_paired_cells_only_where_they_can_pair_with_fp32() -> None:
    (cell,) = _paired_cells(_small())
    assert _paired_cells(_small(paired=False)) == []
    assert _paired_cells(_small(optimizations=["int8", "dynamic"])) == []  # no fp32 base
    assert _paired_cells(_small(optimizations=["fp32"])) == []
    assert _paired_cells(_small(scenarios=["offline"])) == []
    # The options are part of the cell's identity: a resumed run with other options re-runs it.
    (longer,) = _paired_cells(_small(paired={"pairs": 300}))
    assert longer.settings["paired_options"]["pairs"] == 300
    assert longer.cell_id != cell.cell_id
    with pytest.raises(UsageError, match="field 'paired': pairs x rounds gives 2 pairs"):
        suite_from_mapping(_small(paired={"pairs": 1, "rounds": 2}), "s.yaml")
    with pytest.raises(UsageError, match="field 'paired': unknown option 'pears'"):
        suite_from_mapping(_small(paired={"pears": 100}), "s.yaml")


# ---------------------------------------------------------------------------------------------
# Report and recommend on scripted records

AMX = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile"]


def _single_stream(
    opt: str, p50: float, accuracy: float, flags=AMX, size: int = 4000, gzip: int | None = None
) -> dict:
    rng = np.random.default_rng(zlib.crc32(opt.encode()))
    raw = (p50 * rng.lognormal(0.0, 0.05, 300)).tolist()
    record = {
        "cell_id": f"m.{opt}.host.t1.single-stream.a",
        "run_id": "r",
        "status": "ok",
        "model": "m",
        "optimization": opt,
        "profile": "host",
        "execution": "local",
        "threads": 1,
        "scenario": "single-stream",
        "settings": {"preset": "quick"},
        "metrics": {
            "latency_p50_ms": metric(float(np.median(raw)), "ms", "lower"),
            "accuracy": metric(accuracy, "fraction", "higher"),
            "accuracy_delta": metric(accuracy - 0.95, "fraction", "higher"),
            "model_bytes": metric(size, "bytes", "lower"),
        },
        "raw_latencies_ms": raw,
        "artifact": {"sha256": "a" * 64},
        "environment": {"cpu_model": "Test CPU", "cpu_flags": list(flags)},
    }
    if gzip is not None:
        record["metrics"]["model_gzip_bytes"] = metric(gzip, "bytes", "lower")
    return record


def _paired(opt: str, ratio: float, low: float, high: float, flags=AMX, base_ms=1.0) -> dict:
    """The record a suite's paired cell writes for opt: time ratio opt/fp32 with its interval."""
    cell = "m.fp32.host.t1.paired.b"
    return {
        "cell_id": f"{cell}.{opt}",
        "parent_cell_id": cell,
        "run_id": "r",
        "status": "ok",
        "model": "m",
        "optimization": opt,
        "profile": "host",
        "execution": "local",
        "threads": 1,
        "scenario": "paired",
        "settings": {"preset": "paired"},
        "metrics": {
            "paired_ratio": metric(ratio, "x", "lower"),
            "base_p50_ms": metric(base_ms, "ms", "lower"),
            "new_p50_ms": metric(base_ms * ratio, "ms", "lower"),
        },
        "paired": {
            "base": "fp32",
            "sides": ["fp32", opt],
            "ratio": ratio,
            "ci_low": low,
            "ci_high": high,
            "round_ratio_min": low * 0.99,
            "round_ratio_max": high * 1.01,
            "rounds": 5,
            "pairs": 500,
            "confidence": 0.95,
        },
        "environment": {"cpu_model": "Test CPU", "cpu_flags": list(flags)},
    }


def _run(path: Path, records: list[dict]) -> Path:
    for record in records:
        append_record(path, record)
    write_run_outputs(path)
    return path


def test_a_paired_interval_excluding_1_is_claimed(tmp_path: Path, capsys) -> None:
    # int8 separately measured at 2x, paired at 1/0.5435 = 1.84x (CI 1/0.5556..1/0.5319).
    run = _run(
        tmp_path / "run",
        [
            _single_stream("fp32", 1.0, 0.95),
            _single_stream("int8", 0.5, 0.947, size=1000),
            _paired("int8", 0.5435, 0.5319, 0.5556),
        ],
    )
    md = (run / "report.md").read_text()
    claim = "int8 is 1.84× (95% CI 1.80–1.88, 5 rounds 1.78–1.90, paired) faster than fp32"
    assert f"On host (1 thr), {claim} for -0.3 points" in md
    row = next(line for line in md.splitlines() if line.startswith("| int8 | host | 1 |"))
    assert "1.84× (95% CI 1.80–1.88, 5 rounds 1.78–1.90, paired): faster" in row
    assert "2.00×" not in md  # the separately measured figure is not the speed-up shown
    assert "busy machine" not in md and "rerun" not in md
    assert main(["recommend", str(run), "--max-latency-ms", "10"]) == 0
    out = capsys.readouterr().out
    assert "m int8 on host" in out
    assert "speed-up vs fp32 1.84× (95% CI 1.80–1.88, 5 rounds 1.78–1.90, paired): faster" in out


def test_the_pick_is_the_largest_paired_speed_up_not_the_lowest_separate_latency() -> None:
    from accelbench.report.tradeoffs import recommendation

    records = [
        _single_stream("fp32", 1.0, 0.95),
        _single_stream("int8", 0.4, 0.95),
        _single_stream("dynamic", 0.5, 0.95),
        _paired("int8", 0.67, 0.66, 0.68),
        _paired("dynamic", 0.53, 0.52, 0.54),
    ]
    assert recommendation(points(records), "m", "host").startswith("on host, dynamic is 1.89× (")


@pytest.mark.parametrize(
    ("ratio", "low", "high", "verdict"),
    [
        (0.90, 0.80, 1.02, "inconclusive"),  # the interval includes 1
        (0.98, 0.97, 0.99, "no measurable difference"),  # excludes 1, but within 5%
        (1.25, 1.20, 1.30, "slower"),
    ],
)
def test_a_paired_figure_not_beyond_the_threshold_is_not_claimed(
    tmp_path: Path, ratio: float, low: float, high: float, verdict: str
) -> None:
    records = [
        _single_stream("fp32", 1.0, 0.95),
        _single_stream("int8", 0.5, 0.95),
        _paired("int8", ratio, low, high),
    ]
    md = (_run(tmp_path / "run", records) / "report.md").read_text()
    assert "int8 is " not in md and "paired) faster than fp32" not in md
    assert "On host (1 thr), nothing is measurably faster than fp32" in md
    assert f"the best paired speed-up is int8's, {1 / ratio:.2f}× (95% CI " in md
    assert f"paired): {verdict}" in md


def test_without_a_paired_record_the_figure_is_labelled_unpaired(tmp_path: Path, capsys) -> None:
    run = _run(
        tmp_path / "run", [_single_stream("fp32", 1.0, 0.95), _single_stream("int8", 0.5, 0.95)]
    )
    md = (run / "report.md").read_text()
    assert "int8 is " not in md and "paired) faster than fp32" not in md
    assert "no optimization was timed paired with fp32" in md
    assert re.search(r"int8: 2\.0\d× \(separately measured cells, not evidence of a differ", md)
    assert main(["recommend", str(run), "--max-latency-ms", "10"]) == 0
    assert "(separately measured cells, not evidence of a difference)" in capsys.readouterr().out


def test_smaller_says_gzipped_and_on_disk_in_report_and_cli_text(tmp_path: Path, capsys) -> None:
    # The sizes of the iris walk-through: 18,756 -> 8,832 bytes on disk (2.1x), gzip 2.7x.
    records = [
        _single_stream("fp32", 1.0, 0.95, size=18_756, gzip=16_200),
        _single_stream("int8", 1.3, 0.95, size=8_832, gzip=6_000),
        _paired("int8", 1.3, 1.28, 1.32),
    ]
    run = _run(tmp_path / "run", records)
    smaller = "int8 is 2.7× smaller gzipped (2.1× on disk) for +0.0 points."
    md = (run / "report.md").read_text()
    assert "On host (1 thr), nothing is measurably faster than fp32" in md
    assert smaller in md
    header = next(line for line in md.splitlines() if line.startswith("| optimization |"))
    assert "| size | smaller than fp32 | gzip | gzip smaller than fp32 |" in header
    row = next(line for line in md.splitlines() if line.startswith("| int8 | host | 1 |"))
    assert "| 8.6 KiB | 2.12× | 5.9 KiB | 2.70× |" in row  # the sentence's two figures
    print_recommendations(records)  # what accelbench optimize and run print
    printed = re.sub(r"[│\s]+", " ", capsys.readouterr().out)
    assert smaller in printed

    # Beside a faster pick, and without gzip sizes (on disk only, said so).
    records[0:0] = [
        _single_stream("dynamic", 0.5, 0.95, size=12_000, gzip=10_000),
        _paired("dynamic", 0.5, 0.49, 0.51),
    ]
    sentence = recommendation(points(records), "m", "host")
    assert sentence.startswith("on host, dynamic is 2.00× (")
    assert sentence.endswith("; int8 is also 2.7× smaller gzipped (2.1× on disk).")
    for r in records:
        r["metrics"].pop("model_gzip_bytes", None)
    sentence = recommendation(points(records), "m", "host")
    assert sentence.endswith("; int8 is also 2.1× smaller on disk."), sentence


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (AMX, "Test CPU has AMX (amx_int8) and AVX-512 VNNI (avx512_vnni)"),
        (["avx2", "avx512f", "avx512_vnni"], "Test CPU has AVX-512 VNNI (avx512_vnni) but no AMX"),
        (["avx", "avx2", "fma"], "Test CPU has AVX2 but no VNNI or AMX"),
    ],
)
def test_int8_paragraph_names_the_paired_ratio_and_the_cpu(flags, says) -> None:
    fp32, int8 = _single_stream("fp32", 0.1, 0.95, flags), _single_stream("int8", 0.09, 0.95, flags)
    int8["graph"] = {"op_counts": {"QUANTIZE": 1, "CONV_2D": 6, "DEQUANTIZE": 1}}
    paired = _paired("int8", 1.10, 1.07, 1.13, flags, base_ms=0.08)
    records = [fp32, int8, paired]
    note = int8_note(points(records), records, "m")
    assert note.startswith(
        "int8 against fp32 on host, 1 thread, timed pair by pair in one worker: "
        "0.91× (95% CI 0.88–0.93, 5 rounds 0.88–0.94, paired): slower; median call 0.08 ms (fp32), "
        "0.088 ms (int8)"
    )
    assert says in note
    assert "2 of its 8 ops convert between float and int8" in note
    assert "the fp32 model already runs in 80 µs" in note
    assert "target" not in note and "rerun" not in note
    if "amx_int8" not in flags and "avx512_vnni" not in flags:
        assert "LiteRT's own benchmark tool timed ic_resnet8 int8 slower than fp32" in note


# ---------------------------------------------------------------------------------------------
# A real suite run


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("paired")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump(_small(optimizations=["fp32", "dynamic", "int8"], epochs=1)))
    out = tmp / "run"
    proc = run_cli("run", str(suite), "--out", str(out), "--no-progress", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines()]


def test_a_suite_run_pairs_each_optimization_with_fp32(paired_run: Path) -> None:
    records = _records(paired_run)
    paired = {r["optimization"]: r for r in records if r["scenario"] == "paired"}
    assert set(paired) == {"dynamic", "int8"}
    (parent,) = {r["parent_cell_id"] for r in paired.values()}
    assert parent.startswith("breast_cancer_mlp.fp32.host.t1.paired.")
    for name, r in paired.items():
        assert r["status"] == "ok" and r["cell_id"] == f"{parent}.{name}"
        assert sorted(r["configuration_keys"]) == ["dynamic", "int8"]
        p = r["paired"]
        assert p["base"] == "fp32" and p["sides"] == ["fp32", name]
        assert p["rounds"] == 5 and p["pairs"] == 500 and len(p["times_ms"][name]) == 500
        assert p["ci_low"] <= p["ratio"] <= p["ci_high"]
        assert p["artifacts"][name]["sha256"] == r["artifact"]["sha256"]
        assert r["artifact"]["path"].endswith(f"{name}.tflite")
        assert r["metrics"]["paired_ratio"]["value"] == p["ratio"]
        assert r["wall_s"] < 60
    md = (paired_run / "report.md").read_text()
    int8 = paired["int8"]["paired"]
    shown = f"{1 / int8['ratio']:.2f}× (95% CI {1 / int8['ci_high']:.2f}–{1 / int8['ci_low']:.2f}"
    assert f"int8 against fp32 on host, 1 thread, timed pair by pair in one worker: {shown}" in md
    row = next(line for line in md.splitlines() if line.startswith("| int8 | host | 1 |"))
    assert shown in row and "paired)" in row


def test_resume_reruns_a_paired_cell_for_its_missing_optimization_only(paired_run: Path) -> None:
    lines = (paired_run / "records.jsonl").read_text().splitlines()
    dropped = next(
        x
        for x in lines
        if json.loads(x)["cell_id"].endswith(".int8") and json.loads(x)["scenario"] == "paired"
    )
    kept = [x for x in lines if x != dropped]
    (paired_run / "records.jsonl").write_text("\n".join(kept) + "\n")
    proc = run_cli("run", "--resume", str(paired_run), "--no-progress", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _records(paired_run)
    assert [json.dumps(r) for r in after[: len(kept)]] == [json.dumps(json.loads(x)) for x in kept]
    (new,) = after[len(kept) :]  # nothing but the missing configuration: none twice
    assert new["cell_id"] == json.loads(dropped)["cell_id"] and new["status"] == "ok"
