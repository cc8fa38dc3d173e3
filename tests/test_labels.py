"""Every figure says how it was obtained: execution in compare, history and the serving report;
a device budget judged on the device's figure; what an MLPerf-preset record is comparable in;
attached GPUs matched to profiles by board variant."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from accelbench.cli import main
from accelbench.records import append_record, metric
from accelbench.report.run_outputs import write_run_outputs


def _cell(cell_id: str, execution: str, p50: float, *, run_id: str = "r", **fields) -> dict:
    rng = np.random.default_rng(zlib.crc32(f"{cell_id}{execution}{p50}".encode()))
    raw = (p50 * rng.lognormal(0.0, 0.1, 200)).tolist()
    record = {
        "schema_version": 1,
        "run_id": run_id,
        "cell_id": cell_id,
        "status": "ok",
        "model": "m",
        "optimization": "fp32",
        "profile": cell_id.split(".")[2],
        "execution": execution,
        "threads": 1,
        "scenario": "single-stream",
        "settings": {"preset": "quick"},
        "metrics": {
            "latency_p50_ms": metric(float(np.median(raw)), "ms", "lower"),
            "qps": metric(1e3 / p50, "samples/s", "higher"),
        },
        "raw_latencies_ms": raw,
        "artifact": {"sha256": "a" * 64},
        "environment": {"host_fingerprint_id": "host-1"},
    }
    record.update(fields)
    return record


def _run(path: Path, records: list[dict]) -> Path:
    for record in records:
        append_record(path, record)
    return path


# --- compare --------------------------------------------------------------------------------


@pytest.fixture
def mixed_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Two runs: cell a local in both; cell b local in base but projected in new."""
    base = _run(
        tmp_path / "base",
        [
            _cell("m.fp32.host.t1.ss.a", "local", 2.0),
            _cell("m.fp32.nvidia-t4.t1.ss.b", "local", 2.0),
        ],
    )
    new = _run(
        tmp_path / "new",
        [
            _cell("m.fp32.host.t1.ss.a", "local", 2.0),
            _cell("m.fp32.nvidia-t4.t1.ss.b", "projected", 0.1),
        ],
    )
    return base, new


def test_compare_shows_execution_and_never_matches_local_with_projected(mixed_runs, capsys):
    base, new = mixed_runs
    assert main(["compare", str(base), str(new), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {r["cell_id"] for r in payload["rows"]} == {"m.fp32.host.t1.ss.a"}
    assert {r["execution"] for r in payload["rows"]} == {"local"}
    (differs,) = payload["execution_differs"]
    assert differs["cell_id"] == "m.fp32.nvidia-t4.t1.ss.b"
    assert (differs["base_execution"], differs["new_execution"]) == ("local", "projected")
    assert "not compared" in differs["reason"]

    assert main(["compare", str(base), str(new)]) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0].split()
    assert header[:3] == ["cell", "execution", "metric"]
    assert "m.fp32.host.t1.ss.a  local" in out and "nvidia-t4" not in out.split("\n\n")[0]
    assert "m.fp32.nvidia-t4.t1.ss.b (local → projected)" in out + err


def test_compare_markdown_rows_carry_execution(tmp_path, capsys):
    base = _run(tmp_path / "b", [_cell("m.fp32.rpi4.t1.ss.c", "emulated", 2.0)])
    new = _run(tmp_path / "n", [_cell("m.fp32.rpi4.t1.ss.c", "emulated", 3.0)])
    assert main(["compare", str(base), str(new), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert "| cell | execution | metric |" in out
    assert "| m.fp32.rpi4.t1.ss.c | emulated | latency_p50_ms |" in out


def test_compare_of_runs_made_differently_is_a_usage_error(tmp_path, capsys):
    base = _run(tmp_path / "b", [_cell("m.fp32.rpi4.t1.ss.c", "local", 2.0)])
    new = _run(tmp_path / "n", [_cell("m.fp32.rpi4.t1.ss.c", "emulated", 2.0)])
    assert main(["compare", str(base), str(new)]) == 2
    assert "local in base, emulated in new" in capsys.readouterr().err


# --- history --------------------------------------------------------------------------------


def test_history_shows_execution_and_keeps_executions_apart(tmp_path, capsys):
    root = tmp_path / "results"
    for i in range(8):
        execution = "local" if i < 4 else "projected"
        when = f"2026-03-{i + 1:02d}T10:00:00+00:00"
        p50 = 2.0 if i < 4 else 0.1
        record = _cell("m.fp32.nvidia-t4.t1.ss.a", execution, p50, run_id=f"r{i}", finished_at=when)
        _run(root / f"r{i}", [record])
    html = tmp_path / "history.html"
    assert main(["history", str(root), "--metric", "latency_p50_ms", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    header, *rows = out.split("\n\n")[0].splitlines()
    assert header.split()[:3] == ["cell", "execution", "metric"]
    series = {(row.split()[1], row.split()[3]) for row in rows}
    assert series == {("local", "4"), ("projected", "4")}  # two series of 4 runs, not one of 8
    page = html.read_text()
    assert "<th>execution</th>" in page and "<td>projected</td>" in page
    assert "m.fp32.nvidia-t4.t1.ss.a (projected): latency_p50_ms" in page


# --- serving report -------------------------------------------------------------------------


def _serving_record(url: str, execution: str) -> dict:
    curve = [
        {
            "target_qps": 100,
            "achieved_qps": 99.0,
            "latency_p50_ms": 1.0,
            "latency_p99_ms": 3.0,
            "loadgen_valid": True,
            "errors": 0,
        }
    ]
    return _cell(
        "m.none.remote.t0.server.x",
        execution,
        1.0,
        scenario="server",
        settings={
            "preset": "quick",
            "url": url,
            "curve": curve,
            "latency_bound_ms": 10,
            "mode": "online",
        },
        metrics={"server_peak_qps": metric(100.0, "QPS", "higher")},
    )


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("http://127.0.0.1:8501", "Measured on loopback (http://127.0.0.1:8501)"),
        ("http://127.8.9.10:8501", "Measured on loopback"),
        ("http://localhost:8501", "Measured on loopback"),
        ("http://[::1]:8501", "Measured on loopback"),
        ("http://gpu-box.example:8501", "remote host gpu-box.example"),
        ("http://10.1.2.3:8501", "remote host 10.1.2.3"),
    ],
)
def test_serving_section_names_loopback_only_for_a_loopback_url(tmp_path, url, where):
    run = _run(tmp_path / "run", [_serving_record(url, "remote")])
    write_run_outputs(run)
    for page in ((run / "report.md").read_text(), (run / "report.html").read_text()):
        serving = page[page.index("Serving: latency vs throughput") :]
        assert where in serving
        assert ("loopback" in serving) == ("remote host" not in where)
    md = (run / "report.md").read_text()
    assert "| mode | execution | status |" in md and "| online | remote | ok |" in md


# --- recommend: one rule for a device budget ------------------------------------------------


def _budget_run(tmp_path: Path) -> Path:
    emulated = dict(profile="rpi4", execution="emulated", threads=4)
    records = [
        # The host under rpi4's limits ran in 1 ms; the device is projected at 20 ms.
        _cell(
            "m.fp32.rpi4.t4.ss.a",
            **emulated,
            p50=1.0,
            metrics={
                "latency_p50_ms": metric(1.0, "ms", "lower"),
                "projected_latency_ms": metric(20.0, "ms", "lower"),
            },
        ),
        # The same, but with no projection: the host's 1 ms says nothing of the device.
        _cell(
            "m.int8.rpi4.t4.ss.b",
            **emulated,
            p50=1.0,
            optimization="int8",
            metrics={"latency_p50_ms": metric(1.0, "ms", "lower")},
        ),
        _cell(
            "m.int16.rpi4.t4.ss.c",
            **emulated,
            p50=1.0,
            optimization="int16",
            metrics={
                "latency_p50_ms": metric(1.0, "ms", "lower"),
                "projected_latency_ms": metric(3.0, "ms", "lower"),
            },
        ),
    ]
    return _run(tmp_path / "run", records)


def test_recommend_judges_an_emulated_profile_on_the_devices_projected_figure(tmp_path, capsys):
    run = _budget_run(tmp_path)
    assert main(["recommend", str(run), "--profile", "rpi4", "--max-latency-ms", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("1 of 2 results meet the budget")
    assert "m int16 on rpi4 (emulated)" in lines[1] and "3 ms (projected; unchecked)" in lines[1]
    assert "m fp32" not in lines[1]  # 1 ms on this host, 20 ms projected on the device
    refused = out[out.index("refused") :]
    assert "m int8 on rpi4 (emulated)" in refused
    assert "no projected latency for rpi4" in refused
    assert "emulated p50" not in out and "1 ms" not in out


def test_recommend_refuses_every_candidate_without_a_device_figure(tmp_path, capsys):
    host_only = {"latency_p50_ms": metric(1.0, "ms", "lower")}
    record = _cell("m.int8.rpi4.t4.ss.b", "emulated", 1.0, profile="rpi4", metrics=host_only)
    run = _run(tmp_path / "run", [record])
    assert main(["recommend", str(run), "--max-latency-ms", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing in this run can be judged against the latency budget")
    assert "this host's speed" in out and "meet the budget" not in out


def test_report_and_recommend_read_the_same_device_figure(tmp_path, capsys):
    run = _budget_run(tmp_path)
    write_run_outputs(run)
    report = (run / "report.md").read_text()
    hardware = report[report.index("## Hardware comparison") :]
    # 1 / 3 ms projected = 333.3 inferences/s for the best rpi4 figure; never 1 / 1 ms host p50.
    assert "333.3" in hardware and "1000" not in hardware.split("\n\n")[2]
    assert main(["recommend", str(run), "--max-latency-ms", "3"]) == 0
    assert "3 ms (projected; unchecked)" in capsys.readouterr().out


# --- MLPerf comparability -------------------------------------------------------------------


def _loadgen_record(official: bool, inputs: str | None) -> dict:
    from accelbench.runner.suite import Cell
    from accelbench.runner.sweep import make_record

    cell = Cell(
        model="m",
        model_path="m.tflite",
        optimization="fp32",
        profile="host",
        profile_data={"name": "host", "kind": "cpu"},
        execution="local",
        threads=1,
        scenario="single-stream",
        preset="mlperf" if official else "quick",
        runtime=None,
        xnnpack=True,
        inputs_path=inputs,
        seed=0,
        timeout_s=60.0,
    )
    result = {
        "status": "ok",
        "metrics": {"latency_p50_ms": metric(1.0, "ms", "lower")},
        "loadgen": {
            "settings": {"qsl": {"total_sample_count": 64}},
            "official_loadgen_rules": official,
            "comparable_to_mlperf": False,
            "result_validity": "VALID",
        },
    }
    return make_record(cell, "run", {"host_fingerprint_id": "h"}, result, 1.0, Path("log"))


def test_an_mlperf_preset_record_says_what_is_comparable_and_what_is_not(tmp_path):
    record = _loadgen_record(official=True, inputs=None)
    settings = record["settings"]
    assert settings["comparable_to_mlperf"] is False
    assert settings["mlperf_comparability"] == {
        "loadgen_settings": True,
        "dataset": "64 synthetic samples",
        "reference_dataset": False,
        "accuracy_run": False,
    }
    user = _loadgen_record(official=False, inputs="/data/x.npy")["settings"]
    assert user["mlperf_comparability"]["dataset"] == "64 user inputs (/data/x.npy)"
    assert user["mlperf_comparability"]["loadgen_settings"] is False

    run = _run(tmp_path / "run", [_cell("m.fp32.host.t1.ss.a", "local", 1.0, settings=settings)])
    write_run_outputs(run)
    for name in ("summary.md", "report.md"):
        text = (run / name).read_text()
        assert "Not comparable with MLPerf Inference results" in text
        assert "official rules in 1 of 1 LoadGen cells" in text
        assert "64 synthetic samples" in text and "no accuracy run" in text


def test_a_record_with_only_the_old_flag_is_not_called_comparable(tmp_path):
    settings = {
        "preset": "mlperf",
        "comparable_to_mlperf": True,
        "inputs": "synthetic",
        "loadgen": {"qsl": {"total_sample_count": 64}},
    }
    run = _run(tmp_path / "run", [_cell("m.fp32.host.t1.ss.a", "local", 1.0, settings=settings)])
    write_run_outputs(run)
    assert "Not comparable with MLPerf Inference results" in (run / "summary.md").read_text()


# --- attached GPUs and built-in profiles ----------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "device", "matches"),
    [
        ("nvidia-h100", "NVIDIA H100 80GB HBM3", True),  # how nvidia-smi names the SXM5
        ("nvidia-h100", "NVIDIA H100 SXM5 80GB", True),
        ("nvidia-h100", "NVIDIA H100 PCIe", False),
        ("nvidia-h100", "NVIDIA H100 NVL", False),
        ("nvidia-a100", "NVIDIA A100-SXM4-80GB", True),
        ("nvidia-a100", "NVIDIA A100-PCIE-40GB", False),
        ("nvidia-a100", "NVIDIA A100 80GB PCIe", False),
        ("nvidia-t4", "Tesla T4", True),
        ("nvidia-l4", "NVIDIA L4", True),
        ("nvidia-l4", "NVIDIA L40S", False),
    ],
)
def test_an_attached_gpu_matches_a_profile_only_on_the_same_board(profile, device, matches):
    from accelbench.hardware_profiles import load_profile
    from accelbench.hardware_profiles.schema import device_matches

    assert device_matches(load_profile(profile), device) is matches


def test_a_pcie_h100_runs_the_sxm_profile_projected_and_says_why(monkeypatch):
    from accelbench.hardware_profiles import execution_mode, load_profile
    from accelbench.hardware_profiles.host import ATTACHED_ENV
    from accelbench.hardware_profiles.schema import variant_mismatch

    h100 = load_profile("nvidia-h100")
    monkeypatch.setenv(ATTACHED_ENV, "NVIDIA H100 PCIe")
    assert execution_mode(h100) == "projected"
    why = variant_mismatch(h100, "NVIDIA H100 PCIe")
    assert why is not None and "PCIe board" in why and "SXM board's" in why
    assert variant_mismatch(h100, "NVIDIA H100 80GB HBM3") is None
    assert variant_mismatch(h100, "NVIDIA A100-SXM4-80GB") is None  # another chip, not a board
