"""The full report's sections (CDF, roofline, hardware table, environment, input pipeline,
training, serving), each computed from the records; the `ci` suite; the CI workflow in docs/."""

from __future__ import annotations

import copy
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

import accelbench.report
from accelbench.cli import main
from accelbench.records import append_record, metric
from accelbench.report.run_outputs import write_run_outputs

REPO = Path(__file__).resolve().parents[1]

ENVIRONMENT = {
    "host_fingerprint_id": "abc123def456",
    "cpu_model": "Test CPU 9000",
    "cpu_vendor": "TestVendor",
    "cpu_flags": ["avx2", "fma"],
    "machine": "x86_64",
    "logical_cores": 2,
    "physical_cores": 2,
    "available_cores": 2,
    "memory_total_gb": 23.5,
    "memory_cgroup_limit_gb": None,
    "os": "Linux",
    "os_release": "Debian GNU/Linux 12 (bookworm)",
    "kernel": "6.1.0",
    "python": "3.11.7",
    "python_implementation": "CPython",
    "packages": {"numpy": "2.4.6", "tflite-runtime": None},
    "gpus": [],
    "git_commit": "0123456789abcdef",
    "git_dirty": True,
}
# A profile of the user's own, known to the report only through the run's cell file.
PRICED_PROFILE = {
    "name": "priced-box",
    "kind": "cpu",
    "vendor": "Acme",
    "model": "Acme box",
    "cores": 4,
    "memory_gb": 8,
    "peak_compute": {"fp32": 0.5},
    "memory_bandwidth_gbps": 20.0,
    "tdp_watts": 40.0,
    "price_per_hour_usd": 0.5,
    "supported_precisions": ["fp32", "int8"],
    "execution": "projected",
    "sources": [],
}

# This host as a calibrated run records it in its cell files.
HOST_PROFILE = {
    **PRICED_PROFILE,
    "name": "host",
    "execution": "local",
    "tdp_watts": None,
    "price_per_hour_usd": None,
    "peak_compute": {"fp32": 0.3, "int8": 3.0},
    "memory_bandwidth_gbps": 30.0,
}


def _record(cell_id: str, **fields) -> dict:
    base = {
        "schema_version": 1,
        "run_id": "synthetic",
        "cell_id": cell_id,
        "status": "ok",
        "error": None,
        "model": "tiny_cnn",
        "optimization": "fp32",
        "profile": "host",
        "profile_kind": "cpu",
        "execution": "local",
        "scenario": "single-stream",
        "runtime": "litert",
        "threads": 1,
        "settings": {"preset": "quick", "comparable_to_mlperf": False},
        "environment": ENVIRONMENT,
        "artifact": {"path": "tiny.tflite", "sha256": "0" * 64, "bytes": 4000},
        "metrics": {},
        "validity": {"result": "VALID"},
        "projection": None,
        "graph": None,
        "raw_latencies_ms": [],
    }
    base.update(fields)
    return base


def _graph(precision: str) -> dict:
    return {
        "flops": 2_000_000,
        "weight_bytes": 20_000,
        "activation_bytes": 30_000,
        "precision": precision,
    }


def synthetic_records() -> list[dict]:
    """One small run with every kind of record the report knows, in the runner's schema."""
    rng = np.random.default_rng(0)
    records = []
    for opt, p50, quality in (("fp32", 0.40, 0.97), ("int8", 0.20, 0.96)):
        raw = (p50 * rng.lognormal(0.0, 0.15, 400)).round(5).tolist()
        records.append(
            _record(
                f"tiny_cnn.{opt}.host.t1.single-stream.aaaa",
                optimization=opt,
                graph=_graph("fp32" if opt == "fp32" else "int8"),
                raw_latencies_ms=raw,
                metrics={
                    "latency_p50_ms": metric(float(np.median(raw)), "ms", "lower"),
                    "accuracy": metric(quality, "fraction", "higher"),
                    "accuracy_delta": metric(quality - 0.97, "fraction", "higher"),
                    "model_bytes": metric(4000, "bytes", "lower"),
                },
            )
        )
        records.append(
            _record(
                f"tiny_cnn.{opt}.host.t1.offline.bbbb",
                optimization=opt,
                scenario="offline",
                raw_latencies_ms=(rng.uniform(1, 900, 300)).round(3).tolist(),
                metrics={"qps": metric(1000 / p50 * 1.5, "samples/s", "higher")},
            )
        )
        records.append(
            _record(
                f"tiny_cnn.{opt}.rpi4.t4.single-stream.cccc",
                optimization=opt,
                profile="rpi4",
                execution="emulated",
                threads=4,
                graph=_graph("int8" if opt == "int8" else "fp32"),
                raw_latencies_ms=(p50 * 1.1 * rng.lognormal(0.0, 0.2, 300)).tolist(),
                projection={"precision": "fp32"},
                metrics={
                    "latency_p50_ms": metric(p50 * 1.1, "ms", "lower"),
                    "projected_latency_ms": metric(p50 * 20, "ms", "lower"),
                    "accuracy": metric(quality, "fraction", "higher"),
                },
            )
        )
        for profile, ms in (
            ("nvidia-t4", p50 / 10),
            ("tpu-v5e", p50 / 20),
            ("priced-box", p50 * 2),
        ):
            records.append(
                _record(
                    f"tiny_cnn.{opt}.{profile}.t1.single-stream.dddd",
                    optimization=opt,
                    profile=profile,
                    execution="projected",
                    graph=_graph("fp32"),
                    projection={"precision": "fp32"},
                    metrics={"projected_latency_ms": metric(ms, "ms", "lower")},
                )
            )
    records += pipeline_records()
    records += training_records()
    return records


def pipeline_records() -> list[dict]:
    parent = "tiny_cnn.none.host.t2.input-pipeline.eeee"
    out = []
    for fmt, rates in (("csv", (1000.0, 2500.0, 4000.0)), ("png", (300.0, 900.0, 1500.0))):
        for pipeline, rate in zip(("naive", "parallel", "best"), rates, strict=True):
            out.append(
                _record(
                    f"{parent}.{fmt}.{pipeline}",
                    parent_cell_id=parent,
                    scenario="input-pipeline",
                    optimization="none",
                    threads=2,
                    settings={
                        "format": fmt,
                        "pipeline": pipeline,
                        "preset": "quick",
                        "stage_ms_per_example": {"read": 0.2, "decode": 0.5}
                        if pipeline == "naive"
                        else None,
                    },
                    metrics={
                        "examples_per_s": metric(rate, "examples/s", "higher"),
                        "mb_per_s": metric(rate / 100, "MB/s", "higher"),
                        "speedup_vs_naive": metric(rate / rates[0], "x", "higher"),
                    },
                )
            )
    out.append(
        _record(
            f"{parent}.jpeg",
            parent_cell_id=parent,
            scenario="input-pipeline",
            optimization="none",
            threads=2,
            status="skipped",
            error="jpeg does not apply to tabular data",
            settings={"format": "jpeg", "pipeline": None},
        )
    )
    out.append(
        _record(
            f"{parent}.input_bound",
            parent_cell_id=parent,
            scenario="input-pipeline",
            optimization="none",
            threads=2,
            settings={
                "pipeline": None,
                "format": "csv",
                "input_bound": True,
                "fixed_by": "parallel",
                "best_pipeline": "best",
                "per_format": {
                    "csv": {
                        "input_bound": True,
                        "fixed_by": "parallel",
                        "naive_pipeline_examples_per_s": 1000.0,
                    },
                    "png": {
                        "input_bound": True,
                        "fixed_by": None,
                        "naive_pipeline_examples_per_s": 300.0,
                    },
                },
            },
            metrics={
                "train_step_examples_per_s": metric(2000.0, "examples/s", "higher"),
                "naive_pipeline_examples_per_s": metric(1000.0, "examples/s", "higher"),
                "best_pipeline_examples_per_s": metric(4000.0, "examples/s", "higher"),
                "input_bound_factor": metric(2.0, "x", "none"),
            },
        )
    )
    return out


def training_records() -> list[dict]:
    parent = "tiny_cnn.fp32.host.t2.training.ffff"
    out = []
    for key, strategy, devices, step, eff in (
        ("tensorflow.none.fp32.xla-off", "none", 1, 12.5, None),
        ("tensorflow.mirrored.fp32.xla-off.d2", "mirrored", 2, 20.0, 0.625),
    ):
        metrics = {
            "step_time_ms": metric(step, "ms", "lower"),
            "examples_per_s": metric(64000 / step, "examples/s", "higher"),
            "time_to_target_s": metric(3.25, "s", "lower"),
            "failed_runs": metric(0, "runs", "lower"),
        }
        if eff is not None:
            metrics["scaling_efficiency"] = metric(eff, "fraction", "higher")
        out.append(
            _record(
                f"{parent}.{key}",
                parent_cell_id=parent,
                scenario="training",
                threads=2,
                settings={
                    "framework": "tensorflow",
                    "strategy": strategy,
                    "precision": "fp32",
                    "xla": False,
                    "devices": devices,
                    "notes": "2 shared cores",
                },
                metrics=metrics,
            )
        )
    # The preparation step's training record shares the scenario name: not a benchmark row.
    out.append(
        _record(
            "tiny_cnn.fp32.host.training", scenario="training", metrics={}, training=None, threads=2
        )
    )
    return out


def write_run(run_dir: Path, records: list[dict], cells: dict[str, dict] | None = None) -> Path:
    """A run folder as the runner leaves it: records.jsonl, cell files, then the derived files."""
    run_dir.mkdir(parents=True)
    for r in records:
        append_record(run_dir, r)
    profiles = {"priced-box": PRICED_PROFILE, "host": HOST_PROFILE, **(cells or {})}
    (run_dir / "cells").mkdir()
    for r in records:
        if r["profile"] in profiles:
            cell = {"cell_id": r["cell_id"], "profile_data": profiles[r["profile"]]}
            (run_dir / "cells" / f"{r['cell_id']}.cell.json").write_text(json.dumps(cell))
    write_run_outputs(run_dir)
    return run_dir


def synthetic_run(tmp_path_factory) -> Path:
    """The synthetic run's folder, written once per session (the browser test loads it too)."""
    run = tmp_path_factory.getbasetemp() / "synthetic-report" / "run"
    if not (run / "report.html").is_file():
        write_run(run, synthetic_records())
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[str, str, Path]:
    run = synthetic_run(tmp_path_factory)
    return (run / "report.md").read_text(), (run / "report.html").read_text(), run


@pytest.fixture(scope="module")
def mutated(tmp_path_factory) -> str:
    """report.md of the same run with some records changed, to see each change in the report."""
    records = synthetic_records()
    records[0]["raw_latencies_ms"] = [5.0] * 399 + [50.0]  # host fp32 single-stream
    for r in records:
        if r["profile"] == "nvidia-t4":
            r["metrics"]["projected_latency_ms"]["value"] = 0.5
        if r["cell_id"].endswith(".input_bound"):
            r["settings"]["input_bound"] = False
    records[1] = copy.deepcopy(records[1])
    records[1]["environment"] = {**ENVIRONMENT, "host_fingerprint_id": "other0000000"}
    run = write_run(tmp_path_factory.mktemp("mutated") / "run", records)
    return (run / "report.md").read_text()


def _row(md: str, *cells: str) -> str:
    """The one Markdown table row holding every given cell."""
    rows = [
        line
        for line in md.splitlines()
        if line.startswith("|") and all(f"| {c} |" in line for c in cells)
    ]
    assert len(rows) == 1, (cells, rows)
    return rows[0]


def test_every_section_is_in_both_files(report) -> None:
    md, page, run = report
    for section in (
        "Latency distributions",
        "Roofline",
        "Hardware comparison",
        "Input pipeline",
        "Training",
        "Environment",
    ):
        assert f"## {section}" in md
        assert f">{section}</h2>" in page and f'href="#{section.lower().replace(" ", "-")}"' in page
    files = {p.name for p in (run / "report_files").iterdir()}
    assert {
        "tiny_cnn_single-stream_cdf.png",
        "tiny_cnn_offline_cdf.png",
        "host_roofline.png",
        "rpi4_roofline.png",
        "nvidia-t4_roofline.png",
        "tiny_cnn_pareto.png",
    } <= files
    # Each PNG beside the Markdown is also embedded in the page, and nothing else is loaded.
    assert page.count('src="data:image/png;base64,') == md.count("](report_files/")
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page


def test_cdf_percentiles_come_from_the_raw_latencies(report, mutated) -> None:
    md, _, _ = report
    expected = np.percentile(synthetic_records()[0]["raw_latencies_ms"], 99)
    row = _row(md, "fp32", "host, 1 thr — measured on this host", "400")
    assert f"| {expected:.4g} |" in row
    md2 = mutated
    assert "| 5 | 5 | 5 |" in _row(md2, "fp32", "host, 1 thr — measured on this host", "400")
    assert "emulated on this host" in md2 and "completion times within the run" in md2


def test_roofline_places_each_artifact_from_its_graph_and_latency(report) -> None:
    md, _, _ = report
    # 2 MFLOP over 50 kB = 40 FLOP/byte; 2 MFLOP in 0.04 ms (t4 projection) = 50 GFLOP/s.
    roofline = md.split("## Roofline")[1].split("## Hardware comparison")[0]
    t4 = roofline.split("### nvidia-t4 roofline")[1].split("###")[0]
    row = _row(t4, "tiny_cnn", "fp32", "fp32", "40", "50")
    assert row.rstrip().endswith("| projected |")
    host = roofline.split("### host roofline")[1].split("###")[0]
    assert _row(host, "tiny_cnn", "int8", "int8", "40").rstrip().endswith("| measured |")
    # rpi4 ran emulated: only its projection is placed on the Pi's roof (0.4 ms x 20 = 8 ms).
    rpi4 = roofline.split("### rpi4 roofline")[1].split("###")[0]
    assert _row(rpi4, "tiny_cnn", "fp32", "fp32", "40", "0.25")
    # The user's profile comes from the run's cell file, with its own roof.
    assert "### priced-box roofline" in roofline


def test_hardware_table_per_watt_and_per_dollar_with_na_reasons(report, mutated) -> None:
    md, _, _ = report
    # Offline throughput outranks 1/p50 on the host; no TDP or price there, said so.
    host = _row(md, "tiny_cnn", "host", "1", "measured")
    assert "Offline samples/s" in host and "| int8 |" in host
    assert "n/a: profile host states no tdp_watts" in host
    # nvidia-t4: best is int8 at 0.02 ms projected = 50,000/s; TDP 70 W -> 714.3/J; no price.
    t4 = _row(md, "tiny_cnn", "nvidia-t4", "1", "projected")
    assert "| 50,000 [unchecked] |" in t4 and "| 70 |" in t4 and "| 714.3 |" in t4
    assert "n/a: profile nvidia-t4 states no price_per_hour_usd" in t4
    assert "n/a: profile tpu-v5e states no tdp_watts" in _row(
        md, "tiny_cnn", "tpu-v5e", "1", "projected"
    )
    # The user's profile has both: 0.4 ms -> 2,500/s, / 40 W = 62.5/J, x 3600 / $0.5 = 18 M/$.
    priced = _row(md, "tiny_cnn", "priced-box", "1", "projected")
    assert "| 2,500 [unchecked] |" in priced and "| 62.5 |" in priced and "| 18,000,000 |" in priced
    # rpi4 ran emulated: its per-watt figure is from the projection (int8 0.2 ms x 20 = 4 ms).
    rpi4 = _row(md, "tiny_cnn", "rpi4", "4", "projected")
    assert "| 250 [unchecked] |" in rpi4 and "| 16.67 |" in rpi4
    # A changed record changes the table.
    assert "| 2,000 [unchecked] |" in _row(mutated, "tiny_cnn", "nvidia-t4", "1", "projected")


def test_hardware_table_cost_per_million_inferences(report) -> None:
    md, _, _ = report
    assert "| $ per million inferences |" in md
    # priced-box: 2,500/s projected at $0.5/h: 9 M an hour, so $0.0556 per million.
    priced = _row(md, "tiny_cnn", "priced-box", "1", "projected")
    assert "| 0.0556 (projected) |" in priced
    # rpi4: its $55 purchase over 3 years is $0.00209/h; at 250/s projected, $0.00233 per million.
    rpi4 = _row(md, "tiny_cnn", "rpi4", "4", "projected")
    assert "| 0.00209 |" in rpi4 and "| 0.00233 (projected) |" in rpi4
    assert "rpi4 price: purchase $55 over 3 years of continuous use (https://" in md
    # nvidia-t4 states why it has no price.
    t4 = _row(md, "tiny_cnn", "nvidia-t4", "1", "projected")
    assert "states no price_per_hour_usd (unknown: no page stating an on-demand price" in t4


def test_input_pipeline_section(report, mutated) -> None:
    md, _, _ = report
    section = md.split("## Input pipeline")[1].split("## Training")[0]
    assert "| csv | best | 4,000 | 1,000 | 4.00× |" in section
    assert "| png | best | 1,500 | 300 | 5.00× |" in section
    assert "| jpeg | - | - | - | - | jpeg does not apply to tabular data |" in section
    assert "Input-bound: the training step consumes 2,000 examples/s" in section
    assert "the least change that removes it: parallel" in section
    assert "png: naive 300 examples/s → input-bound, no configuration keeps up" in section
    assert "#### tiny_cnn: csv" in section and "read 0.2, decode 0.5" in section
    assert "Not input-bound: the training step consumes 2,000" in mutated


def test_training_section(report) -> None:
    md, _, _ = report
    section = md.split("## Training")[1].split("## Environment")[0]
    row = _row(section, "tensorflow.mirrored.fp32.xla-off.d2")
    assert "| mirrored |" in row and "| 20 |" in row and "| 0.625 |" in row
    assert (
        "tensorflow mirrored fp32 on 2 devices: scaling efficiency 0.62 — 2 shared cores" in section
    )
    assert "tiny_cnn.fp32.host.training" not in section  # the preparation record is not a row


def test_environment_section(report, mutated) -> None:
    md, _, _ = report
    section = md.split("## Environment")[1]
    assert "| CPU | Test CPU 9000 (TestVendor, x86_64) |" in section
    assert "| git commit | 0123456789abcdef (with uncommitted changes) |" in section
    assert (
        "| packages | numpy 2.4.6 |" in section and "| not installed | tflite-runtime |" in section
    )
    assert "come from 2 different" in mutated and "### other0000000: 1 records" in mutated


def test_serving_section_is_the_serving_modules_fragment(tmp_path, monkeypatch) -> None:
    serving = [
        _record(
            "tiny_cnn.fp32.host.t1.serving.gggg.online",
            scenario="serving",
            settings={"mode": "online"},
        )
    ]
    seen = []
    fake = types.ModuleType("accelbench.report.serving")
    fake.serving_markdown = lambda records: seen.append(records) or "SERVING-MD online"
    fake.serving_html = lambda records: "<p>SERVING-HTML online</p>"
    monkeypatch.setitem(sys.modules, "accelbench.report.serving", fake)
    monkeypatch.setattr(accelbench.report, "serving", fake, raising=False)
    run = write_run(tmp_path / "run", serving)
    md = (run / "report.md").read_text()
    assert "- Serving\n" in md and "SERVING-MD online" in md
    page = (run / "report.html").read_text()
    assert (
        '<div id="serving"><p>SERVING-HTML online</p></div>' in page and 'href="#serving"' in page
    )
    assert [r["scenario"] for r in seen[0]] == ["serving"]


def test_a_real_bench_run_reports_its_measurements(tmp_path) -> None:
    out = tmp_path / "run"
    model = str(REPO / "tests/data/cnn_int8.tflite")
    args = ["--profile", "host,rpi4,nvidia-t4", "--threads", "1", "--out", str(out)]
    code = main(["bench", model, *args, "--no-progress"])
    assert code == 0
    md = (out / "report.md").read_text()
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    host = next(r for r in records if r["profile"] == "host")
    assert len(host["raw_latencies_ms"]) > 100
    p50 = np.percentile(host["raw_latencies_ms"], 50)
    assert f"| {p50:.4g} |" in _row(
        md, "none", "host, 1 thr — measured on this host", "ok", str(len(host["raw_latencies_ms"]))
    )
    t4 = next(r for r in records if r["profile"] == "nvidia-t4")
    rate = 1e3 / t4["metrics"]["projected_latency_ms"]["value"]
    row = _row(md, "cnn_int8", "nvidia-t4", "1", "projected")
    assert f"| {rate / 70:,.0f} |" in row or f"| {rate / 70:.4g} |" in row
    assert (out / "report_files" / "rpi4_roofline.png").stat().st_size > 5000
    assert (out / "report_files" / "cnn_int8_single-stream_cdf.png").stat().st_size > 5000


def test_ci_suite_is_small_quick_and_known_to_the_cli(capsys) -> None:
    from accelbench.runner.suite import expand, suite_from_mapping
    from accelbench.runner.suites import BUILTIN_SUITES, builtin_suite

    assert "ci" in BUILTIN_SUITES
    suite = suite_from_mapping(builtin_suite("ci", 2), "built-in suite ci")
    cells = expand(suite)
    measured = [c for c in cells if c.scenario != "paired"]
    paired = [c for c in cells if c.scenario == "paired"]
    assert suite.preset == "quick" and len(measured) <= 8
    # one paired cell per model: its int8 timed against its fp32 in one worker
    assert sorted(c.model for c in paired) == ["breast_cancer_mlp", "digits_cnn"]
    assert {c.profile for c in cells} == {"host"} and {c.threads for c in cells} == {1}
    assert {c.optimization for c in measured} == {"fp32", "int8"}
    assert main(["run", "--suite", "nightly"]) == 2
    assert "ci" in capsys.readouterr().err


def test_ci_workflow_parses_and_uses_real_commands() -> None:
    workflow = yaml.safe_load((REPO / "docs/github-actions-accelbench.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push"} <= set(triggers)
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    commands = re.findall(r"\baccelbench ([a-z]+)(?: ([a-z]+))?", "\n".join(runs))
    assert {c for c, _ in commands} >= {"run", "compare", "baseline"}
    for command, action in commands:
        args = [command, action, "--help"] if command == "baseline" else [command, "--help"]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0, (command, action)
    assert "--suite ci" in "\n".join(runs)
    assert (REPO / "docs/ci.md").read_text().count("github-actions-accelbench.yml") >= 1
